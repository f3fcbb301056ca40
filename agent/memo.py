"""Values derived from an object that is never changed once built but cannot be hashed (loaded
settings, a team), remembered by the object's identity.

A team of thousands of reps and tens of thousands of clients makes anything rebuilt from it on
every pass (lookup tables, per-rep maps) cost more than the pass's own mail. Each entry keeps
its object alive, so no other object can take its id while it is remembered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerObject(Generic[K, V]):
    """``build(obj)``, built once for each of the last ``size`` objects it was asked about."""

    def __init__(self, build: Callable[[K], V], size: int = 8) -> None:
        self.build = build
        self.size = size
        self._seen: dict[int, tuple[K, V]] = {}
        self._lock = threading.Lock()

    def __call__(self, obj: K) -> V:
        hit = self._seen.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = self.build(obj)  # outside the lock: two threads may build it, one is kept
        with self._lock:
            while len(self._seen) >= self.size:
                del self._seen[next(iter(self._seen))]
            self._seen[id(obj)] = (obj, value)
        return value
