"""A table of named numpy columns that grow together: the base of the sample timeline and the resource series.

Each column is a GrowableArray; a row is the same index in every column.
Columns are read as attributes (`table.t`, `table.pid`), as views valid
until the next append. What the rows mean, and how old rows are merged or
thinned, is the subclass's business.

Must never hold anything but numpy columns (no live objects, no locks: the
Profile owns the lock), nor import textual or rich.
"""

from __future__ import annotations

import numpy as np

from gradetop.model.growable import GrowableArray


class Columns:
    """Columns of one length, appended to together; `__getattr__` exposes each as a view."""

    def __init__(self, columns: dict[str, type], capacity: int) -> None:
        self._cols = {name: GrowableArray(dtype, capacity) for name, dtype in columns.items()}

    def __len__(self) -> int:
        return len(self._cols["t"])

    def __getattr__(self, name: str) -> np.ndarray:
        # Looked up through __dict__: copy/pickle probe attributes before __init__ has run.
        cols = self.__dict__.get("_cols")
        if cols is not None and name in cols:
            return cols[name].view()
        raise AttributeError(name)

    @property
    def names(self) -> list[str]:
        return list(self._cols)

    def column(self, name: str) -> np.ndarray:
        return self._cols[name].view()

    @property
    def nbytes(self) -> int:
        """Bytes allocated (capacity, not only the rows held)."""
        return sum(c.nbytes for c in self._cols.values())

    def append(self, **columns) -> None:
        """Append rows; every column must be given, as arrays of one length or scalars (repeated)."""
        length = max((len(v) for v in columns.values() if np.ndim(v)), default=1)
        for name, arr in self._cols.items():
            values = columns[name]
            if np.ndim(values) == 0:
                values = np.full(length, values)
            arr.extend(values)

    def frozen_columns(self) -> dict:
        """Every column as it is now, sharing buffers that later appends and splices leave alone."""
        return {name: arr.frozen() for name, arr in self._cols.items()}

    def rows(self, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Copies of all columns (optionally masked): a consistent picture for a reader."""
        if mask is None:
            return {name: arr.view().copy() for name, arr in self._cols.items()}
        return {name: arr.view()[mask] for name, arr in self._cols.items()}
