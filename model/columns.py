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
        self._settle()
        return len(self._cols["t"])

    def __getattr__(self, name: str) -> np.ndarray:
        # Looked up through __dict__: copy/pickle probe attributes before __init__ has run.
        cols = self.__dict__.get("_cols")
        if cols is not None and name in cols:
            self._settle()
            return cols[name].view()
        raise AttributeError(name)

    def _settle(self) -> None:
        """Before any read: bring in rows a subclass holds back (model.series)."""

    @property
    def names(self) -> list[str]:
        return list(self._cols)

    def column(self, name: str) -> np.ndarray:
        self._settle()
        return self._cols[name].view()

    @property
    def nbytes(self) -> int:
        """Bytes allocated (capacity, not only the rows held)."""
        self._settle()
        return sum(c.nbytes for c in self._cols.values())

    def append(self, **columns) -> None:
        """Append rows; every column must be given, as arrays or lists of one length, or scalars (repeated)."""
        # Hot: the model appends every reading and every window, and np.ndim of a list converts it.
        rows = [(arr, values, isinstance(values, list) or (isinstance(values, np.ndarray) and values.ndim > 0))
                for arr, values in zip(self._cols.values(), [columns[name] for name in self._cols])]
        length = next((len(values) for _, values, sequence in rows if sequence), 1)
        for arr, values, sequence in rows:
            arr.extend(values if sequence else np.full(length, values))

    def frozen_columns(self) -> dict:
        """Every column as it is now, sharing buffers that later appends and splices leave alone."""
        self._settle()
        return {name: arr.frozen() for name, arr in self._cols.items()}

    def rows(self, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Copies of all columns (optionally masked): a consistent picture for a reader."""
        self._settle()
        if mask is None:
            return {name: arr.view().copy() for name, arr in self._cols.items()}
        return {name: arr.view()[mask] for name, arr in self._cols.items()}
