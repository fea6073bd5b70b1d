"""docs/clients.md's reconnect table says what the client's close-code policy does."""

from __future__ import annotations

import re
from pathlib import Path

from herald_client.policy import Next, after_close

ROOT = Path(__file__).resolve().parents[2]


def policy_rows() -> dict[int, str]:
    text = (ROOT / "docs" / "clients.md").read_text(encoding="utf-8")
    section = text.split("### Reconnect policy", 1)[1].split("\n### ", 1)[0]
    rows: dict[int, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.match(r"(\d{4})\b", cells[0]) if len(cells) == 3 else None
        if match:
            rows[int(match.group(1))] = cells[2]
    return rows


def test_every_close_code_the_client_handles_is_documented_as_it_behaves() -> None:
    rows = policy_rows()
    assert set(rows) >= {1001, 1006, 1011, 4001, 4003, 4008, 4009}
    for code, says in rows.items():
        fixed = after_close(code, refreshable_token=False, closed_by_app=False)
        callback = after_close(code, refreshable_token=True, closed_by_app=False)
        if "never reconnects" in says:
            assert fixed.next is callback.next is Next.STOP, code
        elif "with a token callback" in says:
            assert callback.next is Next.RECONNECT_WITH_FRESH_TOKEN and fixed.next is Next.STOP, code
        else:
            assert "reconnects" in says, code
            assert fixed.next is callback.next is Next.RECONNECT, code
            assert fixed.limited == ("at least" in says), code
