# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Baselines from vendor bundles (controller side, behind the repository module).

* ``spp``: read an HPE Service Pack for ProLiant and additional-package (hotfix) folders and map
  every Smart Component's ``cp*.xml`` to a manifest component (docs/repository.md, From an SPP).
"""
