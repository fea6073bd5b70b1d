"""Event ids: random ones are version-4 UUIDs in hex; keyed ones are stable per owner."""

from __future__ import annotations

import os
import threading
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


def test_threads_never_get_the_same_id() -> None:
    """Ids are made ahead in bulk; each is handed out once, whichever thread asks."""
    got: list[list[str]] = [[] for _ in range(4)]

    def take(into: list[str]) -> None:
        into.extend(random_id() for _ in range(5000))

    threads = [threading.Thread(target=take, args=(into,)) for into in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [ident for ids in got for ident in ids]
    assert len(every) == 20000 and len(set(every)) == 20000


def test_a_forked_child_does_not_repeat_its_parent_s_ids() -> None:
    random_id()  # ids are now made ahead in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(random_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [random_id() for _ in range(10)]
    assert len(child) == 10 and not set(child) & set(parent)


def test_keyed_ids_are_stable_and_scoped_to_their_owner() -> None:
    assert keyed_event_id("app", "k1") == keyed_event_id("app", "k1")
    assert keyed_event_id("app", "k1") != keyed_event_id("app", "k2")
    assert keyed_event_id("app", "k1") != keyed_event_id("other", "k1")
    # The owner's length is part of the key: no splice makes two pairs collide.
    assert keyed_event_id("a:b", "c") != keyed_event_id("a", "b:c")
