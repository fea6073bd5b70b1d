"""The one JSON nesting limit of Herald, checked on raw bytes before they are decoded.

Every JSON document Herald accepts from outside — a REST body, a WebSocket frame — may be
nested at most :data:`MAX_JSON_DEPTH` levels deep (arrays and objects both count; the
outermost one is level 1). The limit is far above anything a real message needs and far
below the depth at which a recursive decoder runs out of stack, so a hostile document is
refused with ``bad_request`` instead of costing recursion, time or an unexpected exception.

:func:`check_json_depth` works on the undecoded text: string contents are skipped (a ``[``
inside a string is not nesting) and the brackets are measured with C-speed ``bytes``
operations; only a document with more than ``limit`` containers pays for a running sum.
It never recurses, and a megabyte costs it tens of milliseconds at worst.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Final

from herald_common.errors import ErrorCode, HeraldError

#: Deepest nesting of arrays and objects accepted in a REST body or a WebSocket frame.
MAX_JSON_DEPTH: Final = 64

# A string, possibly unterminated (then it runs to the end, which keeps the scan linear on
# garbage such as many escaped quotes). Runs of plain characters are taken whole, between
# escapes (several times faster than one alternation per character), and the possessive
# ``*+`` keeps the regex engine from backtracking into a string it has already consumed.
_STRING: Final = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
# Opening brackets become +1 and closing ones -1 (as signed bytes), so the running sum
# over what is left is the depth at each point; every other byte is deleted. Objects and
# arrays nest alike; a mismatch such as ``[}`` is the decoder's to reject.
_AS_STEPS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS: Final = bytes(set(range(256)) - set(b"[]{}"))
_OPEN: Final = 1
_CLOSE: Final = 0xFF
# A few passes that drop every innermost ``[]`` are nearly free and leave little of
# ordinary documents for the running sum, which costs a Python int per bracket.
_LEAF_PASSES: Final = 4


def check_json_depth(raw: bytes | bytearray | memoryview | str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``HeraldError(bad_request)`` if ``raw`` nests arrays/objects deeper than ``limit``.

    Also raises ``bad_request`` when more brackets open than close outside strings (such a
    document is not JSON, and an unclosed run of ``[`` is the same attack as a deep one).
    Anything else about validity is left to the decoder that runs afterwards: this check
    never accepts a document nested too deeply, and never refuses valid JSON that is not.
    """
    if isinstance(raw, str):
        if raw.count("[") + raw.count("{") <= limit:
            return
        data = raw.encode("utf-8", "surrogatepass")
    else:
        data = bytes(raw)
        if data.count(b"[") + data.count(b"{") <= limit:
            return
    if b'"' in data:
        data = _STRING.sub(b"", data)
    steps = data.translate(_AS_STEPS, _NOT_BRACKETS)
    opens = steps.count(_OPEN)
    if opens != len(steps) - opens:
        raise HeraldError(ErrorCode.BAD_REQUEST, "JSON brackets do not balance")
    if opens <= limit:
        return
    too_deep = HeraldError(ErrorCode.BAD_REQUEST, f"JSON is nested more than {limit} levels deep")
    if bytes((_OPEN,)) * (limit + 1) in steps:  # the usual attack, found at memchr speed
        raise too_deep
    # Each pass removes every innermost container (``bytes.replace`` does not rescan what
    # it produced), which lowers the depth by exactly one.
    removed = 0
    leaf = bytes((_OPEN, _CLOSE))
    while steps and removed < _LEAF_PASSES:
        steps = steps.replace(leaf, b"")
        removed += 1
    depth = removed + (max(accumulate(array("b", steps))) if steps else 0)
    if depth > limit:
        raise too_deep
