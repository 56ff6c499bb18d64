# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m ...plugin_utils.engine serve RUN_DIR``: the daemon (started by ``attach_or_start``)."""
from __future__ import annotations

import sys

from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.daemon import main

if __name__ == "__main__":
    sys.exit(main())
