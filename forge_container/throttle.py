"""Bandwidth caps per transfer: pace a stream of bytes to at most ``rate`` bytes per second.

A :class:`Throttle` is told how many bytes went through and sleeps until the average rate
since the first byte is back under the cap. The clock and the sleep are injected, so tests
check the sleeps it asks for instead of the time it takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

#: The smallest and largest piece a paced transfer moves between two sleeps.
MIN_PIECE = 4 * 1024
MAX_PIECE = 1024 * 1024


class Throttle:
    """Paces one transfer to ``rate`` bytes per second (``rate`` > 0)."""

    def __init__(
        self,
        rate: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a throttle needs a positive rate")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._started: float | None = None
        self._moved = 0

    @property
    def piece_size(self) -> int:
        """How much to move between two sleeps: a quarter of a second's worth, bounded."""
        return min(max(self.rate // 4, MIN_PIECE), MAX_PIECE)

    def pace(self, size: int) -> None:
        """``size`` more bytes moved: sleep until the transfer is back under the cap."""
        now = self._clock()
        if self._started is None:
            self._started = now
        self._moved += size
        due = self._started + self._moved / self.rate
        if due > now:
            self._sleep(due - now)

    def pieces(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` cut into pieces of at most :attr:`piece_size`, each paced before it
        is handed on."""
        step = self.piece_size
        for chunk in chunks:
            for start in range(0, len(chunk), step):
                piece = chunk[start : start + step] if len(chunk) > step else chunk
                self.pace(len(piece))
                yield piece
