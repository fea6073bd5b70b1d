"""Event ids: random ones are version-4 UUIDs in hex; keyed ones are stable per owner."""

from __future__ import annotations

import uuid

from herald_common.events import keyed_event_id, random_id


def test_random_ids_are_uuid4_hex_and_distinct() -> None:
    ids = [random_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for ident in ids:
        parsed = uuid.UUID(hex=ident)
        assert parsed.hex == ident
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_keyed_ids_are_stable_and_scoped_to_their_owner() -> None:
    assert keyed_event_id("app", "k1") == keyed_event_id("app", "k1")
    assert keyed_event_id("app", "k1") != keyed_event_id("app", "k2")
    assert keyed_event_id("app", "k1") != keyed_event_id("other", "k1")
    # The owner's length is part of the key: no splice makes two pairs collide.
    assert keyed_event_id("a:b", "c") != keyed_event_id("a", "b:c")
