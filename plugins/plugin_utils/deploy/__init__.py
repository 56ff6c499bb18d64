# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rooms of the deploy action (issue 15): ``plugins/action/deploy.py`` orchestrates them.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

* ``spec``: the argument spec, declared once (the module's documentation is checked against it).
* ``addresses``: node ids, name resolution, the controller's address facing a node, the run folder.
* ``controller``: the ansible-playbook process this worker serves (``ControllerWatch``).
* ``lease``: the thread that renews the agent's lease (``LeaseKeeper``).
* ``session``: what one node's deploy holds (``Session``), and the session's errors.
* ``signals``: Ctrl-C and SIGTERM turned into one orderly cancel.
* ``delivery``: how components reach the node, the strategy chosen once per session.
* ``reboot``: the Linux reboot and the wait for a new boot id.
"""
