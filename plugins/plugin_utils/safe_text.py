# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Text from a node made safe for the operator's terminal (issue 18 item 4).

A node (an installer's output, an agent's error, a ledger message) may hold escape sequences
that move the cursor, rewrite earlier lines, change the window title or hide text, and bidi
overrides that reorder what is shown. Every control character but newline and tab, and every
bidi control, is written as a visible ``\\xNN`` / ``\\uNNNN`` escape: nothing is lost, nothing
is interpreted.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import re
import typing as t

# C0 controls but \t and \n, DEL, C1 controls, and the bidi embeddings/overrides/isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every terminal control written as a visible escape."""
    return _UNSAFE.sub(_escape, text)


def clean(value: t.Any) -> t.Any:
    """``printable`` applied to every string of a result (dicts, lists, keys too)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
