# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Version comparison for firmware, drivers and software.

Runs on nodes and on the controller: Python 3.6+, standard library only.

``compare(a, b)`` returns a ``Comparison``: ``order`` is -1 (a older), 0 (same), 1 (a newer) or
None when the two cannot be compared, and then ``reason`` says why. It never guesses.

Schemes (``scheme=``):

* ``auto`` (default) understands
  - dotted numbers: ``1.2.3``, ``4.1-2`` (``.``, ``-``, ``_`` all separate);
  - one trailing letter per number: ``2.10 < 2.10a < 2.10b < 2.11``;
  - dates: ``2024.04.00.00`` (SPP style: a year, then a month); a date compares only with a date;
  - vendor forms: ``U30 v2.90 (07/20/2023)`` (ROM family, version, date): families must match,
    and when both sides carry a date it must agree with the version order; the SPP's own form
    of a ROM version, ``2.90_07-20-2023`` (version, underscore, MM-DD-YYYY), is the same
    version and date (so it equals ``U30 v2.90 (07/20/2023)``, never reads as 2.90.07.20.2023);
  - hexadecimal: ``0x2006e05`` (microcode), only against hexadecimal.
  Longer tags (``rc1``, ``beta``) are equal or incomparable, because projects disagree on
  whether they come before or after the plain number.
* ``dpkg``: Debian package versions (epoch, upstream, revision, ``~``), as ``dpkg --compare-versions``.
* ``rpm``: RPM versions (epoch:version-release, ``~`` and ``^``), as ``rpmvercmp``.
"""
import re
from typing import Any, List, NamedTuple, Optional, Tuple

SCHEMES = ("auto", "dpkg", "rpm")

Comparison = NamedTuple("Comparison", [("order", Optional[int]), ("reason", str)])
# key: one (number or None, tag) per segment; date: (year, month, day) or None.
Version = NamedTuple("Version", [("text", str), ("scheme", str), ("family", str), ("key", Tuple[Any, ...]),
                                 ("date", Optional[Tuple[int, int, int]])])

_NOT_A_VERSION = {"", "n/a", "na", "none", "unknown", "not installed", "-", "?"}
_SEGMENT_RE = re.compile(r"^(\d+)([A-Za-z][A-Za-z0-9]*)?$|^([A-Za-z][A-Za-z0-9]*)$")
_SPLIT_RE = re.compile(r"[._-]")
_HEX_RE = re.compile(r"^0[xX]([0-9A-Fa-f]+)$")
_TRAILING_DATE_RE = re.compile(r"^(.*?)\s*\(([^()]*)\)$")
_SPP_ROM_RE = re.compile(r"^(\d+(?:\.\d+)*)_(\d{1,2})-(\d{1,2})-(\d{4})$")
_DATE_FORMS = (
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$"), (3, 1, 2)),  # 07/20/2023 (month first, as HPE writes it)
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"), (1, 2, 3)),  # 2023-07-20
)
_VERSION_TOKEN_RE = re.compile(r"^[vV](\d.*)$")
_DPKG_RE = re.compile(r"^(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")
_RPM_RE = re.compile(r"^(?:(\d+):)?([A-Za-z0-9._+~^]+?)(?:-([A-Za-z0-9._+~^]+))?$")


class UnknownVersion(ValueError):
    """A text that is not a version this module can order; the message says why."""


# --------------------------------------------------------------------------------------------
# auto scheme: parsing
# --------------------------------------------------------------------------------------------


def _parse_date(text):
    # type: (str) -> Tuple[int, int, int]
    for pattern, (y, m, d) in _DATE_FORMS:
        match = pattern.fullmatch(text.strip())
        if match:
            date = (int(match.group(y)), int(match.group(m)), int(match.group(d)))
            if 1 <= date[1] <= 12 and 1 <= date[2] <= 31:
                return date
    raise UnknownVersion("%r is not a date (MM/DD/YYYY or YYYY-MM-DD)" % text)


def _split_family(text):
    # type: (str) -> Tuple[str, str]
    """``U30 v2.90`` -> ("U30", "2.90"); ``2.10a`` -> ("", "2.10a")."""
    tokens = text.split()
    if len(tokens) == 1:
        match = _VERSION_TOKEN_RE.fullmatch(tokens[0])
        return "", match.group(1) if match else tokens[0]
    marked = [i for i, token in enumerate(tokens) if _VERSION_TOKEN_RE.fullmatch(token)]
    if len(marked) == 1 and marked[0] == len(tokens) - 1:
        return " ".join(tokens[:-1]), _VERSION_TOKEN_RE.fullmatch(tokens[-1]).group(1)
    if len(tokens) == 2 and tokens[1][:1].isdigit() and not tokens[0][:1].isdigit():
        return tokens[0], tokens[1]
    raise UnknownVersion("cannot tell which part of %r is the version (write it as FAMILY vX.Y (MM/DD/YYYY))" % text)


def _segments(text, original):
    # type: (str, str) -> Tuple[Any, ...]
    key = []  # type: List[Tuple[Optional[int], str]]
    for part in _SPLIT_RE.split(text):
        match = _SEGMENT_RE.fullmatch(part)
        if not match:
            raise UnknownVersion("%r: the part %r is neither a number, a number with a letter, nor a word" % (original, part))
        if match.group(1) is not None:
            key.append((int(match.group(1)), (match.group(2) or "").lower()))
        else:
            key.append((None, match.group(3).lower()))
    return tuple(key)


def _is_date_version(key):
    # type: (Tuple[Any, ...]) -> bool
    """SPP style ``2024.04.00.00`` (calendar versions): a year, then a month (00-12)."""
    if len(key) < 2 or any(number is None or tag for number, tag in key[:2]):
        return False
    return 1990 <= key[0][0] <= 2199 and 0 <= key[1][0] <= 12


def _parse_auto(text):
    # type: (str) -> Version
    rest, date = text, None
    match = _TRAILING_DATE_RE.fullmatch(text)
    rom = _SPP_ROM_RE.fullmatch(text.strip())
    if match:
        rest, date = match.group(1), _parse_date(match.group(2))
    elif rom:
        rest, date = rom.group(1), _parse_date("%s/%s/%s" % (rom.group(2), rom.group(3), rom.group(4)))
    if not rest.strip():
        raise UnknownVersion("%r holds a date but no version" % text)
    hex_match = _HEX_RE.fullmatch(rest.strip())
    if hex_match:
        return Version(text, "hex", "", ((int(hex_match.group(1), 16), ""),), date)
    family, number = _split_family(rest.strip())
    key = _segments(number, text)
    if key[0][0] is None:
        raise UnknownVersion("%r does not start with a number" % text)
    scheme = "date" if _is_date_version(key) else "dotted"
    return Version(text, scheme, " ".join(family.lower().split()), key, date)


def parse(text, scheme="auto"):
    # type: (Any, str) -> Version
    """Parse a version; raises UnknownVersion with the reason when it cannot be ordered."""
    if scheme not in SCHEMES:
        raise UnknownVersion("unknown version scheme %r (one of %s)" % (scheme, ", ".join(SCHEMES)))
    if text is None or isinstance(text, bool):
        raise UnknownVersion("no version")
    text = str(text).strip()
    if text.lower() in _NOT_A_VERSION:
        raise UnknownVersion("no version (%r)" % text) if text else UnknownVersion("no version (empty)")
    if scheme == "dpkg":
        if not _DPKG_RE.fullmatch(text):
            raise UnknownVersion("%r is not a Debian package version" % text)
        return Version(text, "dpkg", "", (), None)
    if scheme == "rpm":
        if not _RPM_RE.fullmatch(text):
            raise UnknownVersion("%r is not an RPM version" % text)
        return Version(text, "rpm", "", (), None)
    return _parse_auto(text)


def check(text, scheme="auto"):
    # type: (Any, str) -> Optional[str]
    """None when ``text`` is a version of the scheme, else the reason it is not."""
    try:
        parse(text, scheme)
    except UnknownVersion as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------
# auto scheme: ordering
# --------------------------------------------------------------------------------------------


def _sign(value):
    # type: (int) -> int
    return (value > 0) - (value < 0)


def _compare_segment(a, b):
    # type: (Tuple[Optional[int], str], Tuple[Optional[int], str]) -> Comparison
    (number_a, tag_a), (number_b, tag_b) = a, b
    if number_a is None or number_b is None:
        if a == b:
            return Comparison(0, "")
        return Comparison(None, "%r and %r have no defined order" % (_segment_text(a), _segment_text(b)))
    if number_a != number_b:
        return Comparison(_sign(number_a - number_b), "")
    if tag_a == tag_b:
        return Comparison(0, "")
    # One letter after a number is a later revision (2.10 < 2.10a < 2.10b); longer tags are not.
    if len(tag_a) <= 1 and len(tag_b) <= 1:
        return Comparison(_sign((tag_a > tag_b) - (tag_a < tag_b)), "")
    return Comparison(None, "tags %r and %r have no defined order (pre-release or build?)" % (_segment_text(a), _segment_text(b)))


def _segment_text(segment):
    # type: (Tuple[Optional[int], str]) -> str
    number, tag = segment
    return ("" if number is None else str(number)) + tag


def _compare_keys(a, b):
    # type: (Tuple[Any, ...], Tuple[Any, ...]) -> Comparison
    length = max(len(a), len(b))
    padded_a = a + ((0, ""),) * (length - len(a))
    padded_b = b + ((0, ""),) * (length - len(b))
    for index, (seg_a, seg_b) in enumerate(zip(padded_a, padded_b)):
        result = _compare_segment(seg_a, seg_b)
        if result.order is None:
            return result
        if result.order != 0:
            return _letter_against_more_numbers(result, index, padded_a, padded_b)
    return Comparison(0, "")


def _letter_against_more_numbers(result, index, a, b):
    # type: (Comparison, int, Tuple[Any, ...], Tuple[Any, ...]) -> Comparison
    """2.10a against 2.10.1: both come after 2.10 and nothing says which is later."""
    (number_a, tag_a), (number_b, tag_b) = a[index], b[index]
    if number_a != number_b or not (tag_a == "" or tag_b == ""):
        return result
    plain_rest = a[index + 1:] if tag_a == "" else b[index + 1:]
    if any(segment != (0, "") for segment in plain_rest):
        return Comparison(None, "%r and %r have no defined order (a letter against more numbers)"
                          % (_segment_text(a[index]) or "0", _segment_text(b[index]) or "0"))
    return result


def _compare_auto(a, b):
    # type: (Version, Version) -> Comparison
    if a.scheme != b.scheme:
        return Comparison(None, "%r is a %s version and %r a %s version" % (a.text, a.scheme, b.text, b.scheme))
    if a.family and b.family and a.family != b.family:
        return Comparison(None, "%r and %r belong to different families (%s, %s)" % (a.text, b.text, a.family, b.family))
    result = _compare_keys(a.key, b.key)
    if result.order is None:
        return Comparison(None, "%r vs %r: %s" % (a.text, b.text, result.reason))
    if a.date and b.date:
        by_date = _sign((a.date > b.date) - (a.date < b.date))
        if result.order == 0 and by_date != 0:
            return Comparison(None, "%r and %r have the same version but different dates" % (a.text, b.text))
        if result.order != 0 and by_date != 0 and by_date != result.order:
            return Comparison(None, "%r and %r: the version order and the date order disagree" % (a.text, b.text))
    return result


# --------------------------------------------------------------------------------------------
# dpkg and rpm
# --------------------------------------------------------------------------------------------


def _dpkg_order(text, index):
    # type: (str, int) -> int
    if index >= len(text) or text[index].isdigit():
        return 0
    char = text[index]
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _dpkg_part(a, b):
    # type: (str, str) -> int
    """dpkg's verrevcmp."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            order_a, order_b = _dpkg_order(a, i), _dpkg_order(b, j)
            if order_a != order_b:
                return _sign(order_a - order_b)
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        number_a, number_b = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if number_a != number_b:
            return _sign(number_a - number_b)
    return 0


def _dpkg_compare(a, b):
    # type: (str, str) -> int
    match_a, match_b = _DPKG_RE.fullmatch(a), _DPKG_RE.fullmatch(b)
    epoch_a, epoch_b = int(match_a.group(1) or 0), int(match_b.group(1) or 0)
    if epoch_a != epoch_b:
        return _sign(epoch_a - epoch_b)
    return _dpkg_part(match_a.group(2), match_b.group(2)) or _dpkg_part(match_a.group(3) or "", match_b.group(3) or "")


def _rpm_segment_compare(a, b):
    # type: (str, str) -> int
    """rpmvercmp (with ``~`` sorting before and ``^`` after the plain version)."""
    if a == b:
        return 0
    while a or b:
        a = re.sub(r"^[^A-Za-z0-9~^]+", "", a)
        b = re.sub(r"^[^A-Za-z0-9~^]+", "", b)
        if a.startswith("~") or b.startswith("~"):
            if not a.startswith("~"):
                return 1
            if not b.startswith("~"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if a.startswith("^") or b.startswith("^"):
            if not a:
                return -1
            if not b:
                return 1
            if not a.startswith("^"):
                return 1
            if not b.startswith("^"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if not a or not b:
            break
        pattern = r"^\d+" if a[0].isdigit() else r"^[A-Za-z]+"
        seg_a = re.match(pattern, a).group(0)
        match_b = re.match(pattern, b)
        if not match_b:
            return 1 if a[0].isdigit() else -1
        seg_b = match_b.group(0)
        a, b = a[len(seg_a):], b[len(seg_b):]
        if seg_a[0].isdigit():
            diff = int(seg_a) - int(seg_b)
        else:
            diff = (seg_a > seg_b) - (seg_a < seg_b)
        if diff:
            return _sign(diff)
    if not a and not b:
        return 0
    return 1 if a else -1


def _rpm_compare(a, b):
    # type: (str, str) -> int
    match_a, match_b = _RPM_RE.fullmatch(a), _RPM_RE.fullmatch(b)
    epoch_a, epoch_b = int(match_a.group(1) or 0), int(match_b.group(1) or 0)
    if epoch_a != epoch_b:
        return _sign(epoch_a - epoch_b)
    result = _rpm_segment_compare(match_a.group(2), match_b.group(2))
    if result or not (match_a.group(3) and match_b.group(3)):
        return result
    return _rpm_segment_compare(match_a.group(3), match_b.group(3))


def compare(a, b, scheme="auto"):
    # type: (Any, Any, str) -> Comparison
    """Order of ``a`` against ``b``: -1 older, 0 same, 1 newer, None unknown (with the reason)."""
    try:
        version_a = parse(a, scheme)
    except UnknownVersion as exc:
        return Comparison(None, "cannot read %r: %s" % (a, exc))
    try:
        version_b = parse(b, scheme)
    except UnknownVersion as exc:
        return Comparison(None, "cannot read %r: %s" % (b, exc))
    if scheme == "dpkg":
        return Comparison(_dpkg_compare(version_a.text, version_b.text), "")
    if scheme == "rpm":
        return Comparison(_rpm_compare(version_a.text, version_b.text), "")
    return _compare_auto(version_a, version_b)
