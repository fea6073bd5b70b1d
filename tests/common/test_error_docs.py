"""The error and close code tables in docs/rest.md and docs/protocol.md are the code's.

`herald_common.errors` owns the codes (one table for REST and WebSocket). REST can answer
every code, so docs/rest.md lists each with its HTTP status. The gateway sends only some of
them in `error` frames; which ones is read from the sources that build those frames (the
gateway and the shared modules it raises through), so a code added to or dropped from the
gateway without a doc change fails here, as does a documented code it never sends.
"""

from __future__ import annotations

import re
from pathlib import Path

from herald_common.errors import CloseCode, ErrorCode

ROOT = Path(__file__).resolve().parents[2]
ERROR_REF = re.compile(r"\bErrorCode\.([A-Z_]+)\b")


def table(doc: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``## heading``, as lists of cell texts."""
    text = (ROOT / "docs" / doc).read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, f"no table under '## {heading}' in docs/{doc}"
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def code_cell(cell: str) -> str:
    match = re.fullmatch(r"`([a-z_]+)`", cell)
    assert match, f"not a `code` cell: {cell!r}"
    return match.group(1)


def codes_sent_by_the_gateway() -> set[str]:
    sources = [
        *(ROOT / "services" / "gateway" / "src").rglob("*.py"),
        *(ROOT / "libs" / "common" / "src").rglob("*.py"),
    ]
    names = {name for path in sources if path.name != "errors.py" for name in ERROR_REF.findall(path.read_text())}
    return {ErrorCode[name].value for name in names}


def test_rest_error_table_is_the_error_enum_with_its_statuses() -> None:
    """Every code, each with the status the api maps it to. A code may have further rows for
    answers given before the api's error mapping runs (`too_large` as 431 for oversized
    headers), but never the same status twice."""
    documented: dict[str, list[int]] = {}
    for row in table("rest.md", "Errors"):
        documented.setdefault(code_cell(row[0]), []).append(int(row[1]))
    assert set(documented) == {code.value for code in ErrorCode}
    for code in ErrorCode:
        statuses = documented[code.value]
        assert code.http_status in statuses, (code, statuses)
        assert len(set(statuses)) == len(statuses), (code, statuses)


def test_protocol_error_table_is_what_the_gateway_sends() -> None:
    rows = table("protocol.md", "Errors")
    documented = [code_cell(row[0]) for row in rows]
    assert len(set(documented)) == len(documented), "a code is listed twice in docs/protocol.md"
    assert set(documented) <= {code.value for code in ErrorCode}, "docs/protocol.md lists a code Herald does not have"
    assert set(documented) == codes_sent_by_the_gateway()


def test_protocol_close_code_table_is_the_close_enum() -> None:
    documented = [int(row[0]) for row in table("protocol.md", "Close codes")]
    assert sorted(documented) == sorted(code.value for code in CloseCode if code is not CloseCode.NORMAL)
