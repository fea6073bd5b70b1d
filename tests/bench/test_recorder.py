"""The load processes' tally: distinct message ids per socket, duplicates and strays."""

from __future__ import annotations

from herald_bench.clients import Recorder, numbered, stamp


def frame(seq: int, now_ns: int = 1_000_000) -> bytes:
    return b'{"type":"message","topic":"bench.rest","data":{"p":"' + numbered(now_ns, seq).encode() + b'xx"}}'


def test_without_a_window_every_stamped_frame_counts() -> None:
    rec = Recorder()
    rec.record(stamp(1_000_000).encode(), 3_000_000)
    rec.record(stamp(1_000_000).encode(), 3_000_000)
    rec.record(b"no stamp", 3_000_000)
    assert rec.count == 3 and rec.unstamped == 1
    assert list(rec.samples) == [2000, 2000]


def test_a_window_counts_each_id_once_per_socket() -> None:
    rec = Recorder()
    rec.reset(base=100, size=3)
    a, b = bytearray(3), bytearray(3)
    for seq, seen in ((100, a), (101, a), (100, a), (100, b), (102, b)):
        rec.record(frame(seq), 2_000_000, seen)
    assert rec.count == 4
    assert rec.duplicates == 1
    assert list(rec.hits) == [2, 1, 1]
    assert len(rec.samples) == 4 and rec.samples[0] == 1000


def test_ids_outside_the_window_and_unnumbered_frames_are_strays() -> None:
    rec = Recorder()
    rec.reset(base=100, size=2)
    seen = bytearray(2)
    rec.record(frame(99), 2_000_000, seen)  # a late message of the step before
    rec.record(frame(102), 2_000_000, seen)
    rec.record(stamp(1_000_000).encode(), 2_000_000, seen)
    rec.record(frame(101), 2_000_000, bytearray())  # a socket opened after the window started
    assert rec.count == 0 and rec.strays == 4
    assert list(rec.hits) == [0, 0]
