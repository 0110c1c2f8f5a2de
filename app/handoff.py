"""Pages intake decoded, handed to this process's OCR slots so that an image is decoded once.

Intake decodes every frame of an upload to refuse a broken file with a 400 before anything is
stored; the OCR slot that reads the page a moment later would decode the same bytes again, which
was the largest single share of the service's own CPU per page. In the embedded process the
decoded page waits here instead. Held pages are bounded by bytes and by age; when full, new pages
are not kept (the ones held are the next to be read, as the queue is first in, first out), and a
page not found here is simply decoded again: the stored file stays the truth.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

from PIL import Image

from . import pages

MAX_AGE = 120.0  # s: a page still queued after this is decoded again when its turn comes


def held_bytes(image: Image.Image) -> int:
    """Memory of a decoded image: Pillow keeps 1, L and P in a byte per pixel, other modes in four."""
    return image.width * image.height * (1 if image.mode in ("1", "L", "P") else 4)


class DecodedPages:
    """Upright decoded frames by (file sha256, page index); each is taken once."""

    def __init__(self, max_bytes: int, *, max_pixels: int, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels  # the OCR budget: a larger JPEG is decoded reduced in the slot instead
        self.max_age = max_age
        self._clock = clock
        self._held: "OrderedDict[tuple[str, int], tuple[float, int, Image.Image]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def keeper(self, sha256: str) -> Callable[[int, Image.Image], None]:
        """What intake calls with each frame it decoded of the file `sha256`."""
        return lambda index, frame: self.offer(sha256, index, frame)

    def offer(self, sha256: str, index: int, frame: Image.Image) -> None:
        """Keep an upright copy of a decoded frame when there is room (the frame itself is closed later)."""
        size = held_bytes(frame)
        if frame.width * frame.height > self.max_pixels or not self._room(size):
            return
        upright = pages.upright(frame)
        with self._lock:
            self._expire()
            key = (sha256, index)
            if key in self._held or self._bytes + size > self.max_bytes:
                return
            self._held[key] = (self._clock(), size, upright)
            self._bytes += size

    def take(self, sha256: str, index: int) -> Image.Image | None:
        with self._lock:
            held = self._held.pop((sha256, index), None)
            if held is None:
                return None
            self._bytes -= held[1]
            return held[2]

    def discard(self, sha256: str) -> None:
        """Drop every page of a file that will not be read (its task was answered from the cache)."""
        with self._lock:
            for key in [k for k in self._held if k[0] == sha256]:
                self._bytes -= self._held.pop(key)[1]

    @property
    def held(self) -> tuple[int, int]:
        """(pages, bytes) held now."""
        with self._lock:
            return len(self._held), self._bytes

    def _room(self, size: int) -> bool:
        with self._lock:
            self._expire()
            return self._bytes + size <= self.max_bytes

    def _expire(self) -> None:
        # Insertion order is age order: the oldest are first.
        end = self._clock() - self.max_age
        while self._held:
            key, (since, size, _) = next(iter(self._held.items()))
            if since > end:
                return
            del self._held[key]
            self._bytes -= size
