"""Projectors of a store's reference volumes, built on first use and kept for the most recently used few."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr

from orirec.store import reference_volume

__all__ = ["ProjectorCache"]


class ProjectorCache:
    """``cache(p)`` -> the projector of protein ``p``'s reference volume (``volumes/<p>`` of ``group``).

    ``make(volume)`` builds a projector; at most ``max_volumes`` are held (least recently used first out),
    so a store of hundreds of structures needs the memory of a few Fourier volumes, not of all of them.
    """

    def __init__(self, group: zarr.Group, make: Callable[[np.ndarray], Any], max_volumes: int = 4):
        if max_volumes < 1:
            raise ValueError(f"ProjectorCache: max_volumes must be >= 1, got {max_volumes}")
        self.group, self.make, self.max_volumes = group, make, int(max_volumes)
        self._held: OrderedDict[int, Any] = OrderedDict()

    def __call__(self, p: int) -> Any:
        if p in self._held:
            self._held.move_to_end(p)
        else:
            if len(self._held) >= self.max_volumes:
                self._held.popitem(last=False)
            self._held[p] = self.make(reference_volume(self.group, p))
        return self._held[p]

    def __len__(self) -> int:
        return len(self._held)
