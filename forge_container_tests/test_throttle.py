"""Pacing a transfer: the sleeps a throttle asks for, on an injected clock."""

from __future__ import annotations

import pytest

from forge_container.throttle import MAX_PIECE, MIN_PIECE, Throttle


class FakeTime:
    """A clock that moves only when slept on (or when a test moves it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def throttle(self, rate: int) -> Throttle:
        return Throttle(rate, clock=self.clock, sleep=self.sleep)


def test_each_step_sleeps_until_the_average_is_back_under_the_cap() -> None:
    time = FakeTime()
    throttle = time.throttle(1000)
    throttle.pace(500)
    throttle.pace(500)
    assert time.sleeps == [pytest.approx(0.5), pytest.approx(0.5)]


def test_a_slow_transfer_is_not_slowed_further() -> None:
    time = FakeTime()
    throttle = time.throttle(1000)
    throttle.pace(1000)
    time.now += 5  # the client took its time
    throttle.pace(2000)
    assert time.sleeps == [pytest.approx(1.0)]
    throttle.pace(4000)  # 7000 bytes are due at 7 s; 6 s have gone by
    assert time.sleeps[1:] == [pytest.approx(1.0)]


def test_pieces_cut_chunks_and_keep_every_byte() -> None:
    time = FakeTime()
    throttle = time.throttle(64 * 1024)
    chunks = [bytes(range(256)) * 160, b"", b"tail"]  # 40 KiB, nothing, 4 bytes
    pieces = list(throttle.pieces(chunks))
    assert b"".join(pieces) == b"".join(chunks)
    assert [len(p) for p in pieces] == [16 * 1024, 16 * 1024, 8 * 1024, 4]
    assert sum(time.sleeps) == pytest.approx((40 * 1024 + 4) / (64 * 1024))


def test_piece_sizes_are_bounded() -> None:
    assert Throttle(1).piece_size == MIN_PIECE
    assert Throttle(10**12).piece_size == MAX_PIECE


def test_a_throttle_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        Throttle(0)
