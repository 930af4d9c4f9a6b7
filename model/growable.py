"""A numpy array that grows by amortised doubling.

The model appends samples a few hundred at a time for hours; numpy arrays
cannot grow in place, and Python lists of ints cost 28+ bytes each.
"""

from __future__ import annotations

import numpy as np


class GrowableArray:
    __slots__ = ("_data", "_size")

    def __init__(self, dtype, capacity: int = 64) -> None:
        self._data = np.empty(max(capacity, 1), dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index):
        return self._data[: self._size][index]

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def view(self) -> np.ndarray:
        """The filled part, without a copy: valid until the next append."""
        return self._data[: self._size]

    def _reserve(self, extra: int) -> None:
        need = self._size + extra
        if need > len(self._data):
            grown = np.empty(max(need, len(self._data) * 3 // 2 + 64), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown

    def append(self, value) -> None:
        self._reserve(1)
        self._data[self._size] = value
        self._size += 1

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        size, n = self._size, len(values)
        if size + n > len(self._data):
            self._reserve(n)
        self._data[size:size + n] = values
        self._size = size + n

    def frozen(self) -> "GrowableArray":
        """The filled part as it is now, sharing the buffer: appends write past its end and splices
        copy, so nothing done to this array later changes what the frozen one holds."""
        copy = GrowableArray.__new__(GrowableArray)
        copy._data = self._data[: self._size]
        copy._size = self._size
        return copy

    def splice(self, start: int, end: int, values) -> None:
        """Replace [start, end) by `values` (no longer than it).

        Into a new buffer, never in place: frozen views of the old one (pictures
        the UI is drawing) must not change under them. Compaction is rare (every
        50k rows), so the copy costs little.
        """
        values = np.asarray(values, dtype=self._data.dtype)
        assert len(values) <= end - start, "splice only shrinks"
        size = start + len(values) + self._size - end
        data = np.empty(max(len(self._data), 1), dtype=self._data.dtype)
        data[:start] = self._data[:start]
        data[start : start + len(values)] = values
        data[start + len(values) : size] = self._data[end : self._size]
        self._data = data
        self._size = size

    def replace(self, values) -> None:
        """Set the whole content (used by compaction)."""
        values = np.asarray(values, dtype=self._data.dtype)
        self._data = np.array(values, dtype=self._data.dtype, copy=True)
        if len(self._data) == 0:
            self._data = np.empty(1, dtype=values.dtype)
        self._size = len(values)
