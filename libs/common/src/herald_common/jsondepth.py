"""Herald's one limit on JSON nesting, measured on the raw text before anything decodes it.

msgspec (and every other recursive decoder) spends one stack frame per array or object
level, so a document nested a few thousand levels deep ends in ``RecursionError``, and one
nested just under that can be decoded in one place (a shallow stack) and not in another
(a deep one). Checking the depth up front turns both into a plain ``bad_request``: every
edge that takes JSON from outside (REST bodies, WebSocket frames) refuses documents nested
more than :data:`MAX_JSON_DEPTH` levels, a depth no real message needs.
"""

from __future__ import annotations

import re
from typing import Final

from herald_common.errors import ErrorCode, HeraldError

#: Deepest nesting of arrays and objects accepted; the outermost container is level 1.
MAX_JSON_DEPTH: Final = 64

# A JSON string (escapes included), or an unterminated one running to the end of the text,
# and everything else that is not a bracket: what remains after removing both is the
# bracket skeleton. The unrolled form keeps the scan linear, without backtracking.
_NOT_STRUCTURE: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[^"\[\]{}]+', re.DOTALL)
# Arrays and objects nest alike; which closer matches which opener is the decoder's business.
_SQUARE: Final = bytes.maketrans(b"{}", b"[]")
_RUNS: Final = re.compile(rb"\[+|\]+")
_OPEN: Final = ord("[")
_PASSES: Final = 3


def _too_deep(limit: int) -> HeraldError:
    return HeraldError(ErrorCode.BAD_REQUEST, f"JSON nested more than {limit} levels deep")


def check_json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``HeraldError(bad_request)`` when ``raw`` nests arrays or objects more than
    ``limit`` levels deep; return quietly otherwise.

    A valid document within the limit always passes, and nothing that passes can make a
    decoder recurse deeper than ``limit`` before it finds a mistake (a malformed document
    either fails here or is left for the decoder to reject). It never recurses itself; its cost is a few passes
    of ``bytes`` operations over the document and a loop over the runs of brackets left.
    """
    # Fewer openers than the limit cannot nest deeper: the common case costs two counts.
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    skeleton = _NOT_STRUCTURE.sub(b"", raw).translate(_SQUARE)
    if b"[" * (limit + 1) in skeleton:
        raise _too_deep(limit)
    # A few passes of removing every innermost container (C speed) leave few runs for the
    # loop below. A pass lowers the deepest level by one at most, and by exactly one in a
    # balanced skeleton, so the loop compares with the limit lowered by the passes made.
    passes = 0
    while passes < min(_PASSES, limit) and b"[]" in skeleton:
        skeleton = skeleton.replace(b"[]", b"")
        passes += 1
    depth = 0
    for run in _RUNS.finditer(skeleton):
        size = run.end() - run.start()
        if skeleton[run.start()] == _OPEN:
            depth += size
            if depth > limit - passes:
                raise _too_deep(limit)
        else:
            depth -= size
            if depth < 0:
                # A closer without an opener: not JSON, and a decoder stops there.
                return
