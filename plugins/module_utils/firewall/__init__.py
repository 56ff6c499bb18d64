# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tagged firewall openings with a lease, one backend per firewall (see api.py).

Node-side code: Python 3.6+, standard library only (the node agent reuses it).
"""
