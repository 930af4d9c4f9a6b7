"""Resource readings over time: per process (CPU, RSS, IO, threads) and per thread (CPU).

Counters are stored cumulative, as the kernel gives them, so any time window's
usage is a difference of two interpolated values and nothing is lost when old
readings are thinned out.
"""

from __future__ import annotations

import numpy as np

from gradetop.model.growable import GrowableArray

PROCESS_COLUMNS = {
    "t": np.float64,
    "pid": np.int32,
    "cpu_s": np.float64,  # user + system seconds since the process started
    "rss": np.int64,  # bytes
    "read_bytes": np.int64,  # cumulative, -1 where the kernel would not say
    "write_bytes": np.int64,
    "threads": np.int32,
}

THREAD_COLUMNS = {
    "t": np.float64,
    "pid": np.int32,
    "tid": np.int32,
    "cpu_s": np.float64,  # user + system seconds
    "active_s": np.float64,  # seconds running or waiting for a CPU (schedstat)
}


class Series:
    """Columnar readings, appended in time order, thinned to `keep_every_s` past `age_s`."""

    def __init__(self, columns: dict[str, type], age_s: float = 600.0, keep_every_s: float = 1.0) -> None:
        self._cols = {name: GrowableArray(dtype, 256) for name, dtype in columns.items()}
        self.age_s = age_s
        self.keep_every_s = keep_every_s
        self._thinned_upto = 0
        self._rows_at_last_thin = 0

    def __len__(self) -> int:
        return len(self._cols["t"])

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("_cols")
        if cols is not None and name in cols:
            return cols[name].view()
        raise AttributeError(name)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._cols.values())

    def append(self, **columns) -> None:
        length = max((len(v) for v in columns.values() if np.ndim(v)), default=1)
        for name, arr in self._cols.items():
            values = columns[name]
            if np.ndim(values) == 0:
                values = np.full(length, values)
            arr.extend(values)

    def frozen(self) -> "Series":
        """These readings as they are now; later appends and thinning do not change them."""
        copy = Series({}, self.age_s, self.keep_every_s)
        copy._cols = {name: arr.frozen() for name, arr in self._cols.items()}
        copy._thinned_upto = copy._rows_at_last_thin = len(copy)
        return copy

    def rows(self, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if mask is None:
            return {name: arr.view().copy() for name, arr in self._cols.items()}
        return {name: arr.view()[mask] for name, arr in self._cols.items()}

    def thin(self, min_new_rows: int = 20_000) -> None:
        """Keep one reading per series key and `keep_every_s` among readings older than `age_s`.

        Cumulative counters survive thinning; only the resolution of old
        instantaneous values (RSS, thread count) is lost.
        """
        if len(self) - self._rows_at_last_thin < min_new_rows:
            return
        t = self.t
        before = float(t.max()) - self.age_s
        end = int(np.searchsorted(t, before))
        start = self._thinned_upto
        if end <= start:
            self._rows_at_last_thin = len(self)
            return
        keys = [self._cols[k].view()[start:end] for k in ("pid", "tid") if k in self._cols]
        slot = np.floor(t[start:end] / self.keep_every_s).astype(np.int64)
        # Last reading of each (slot, key): it carries the counters up to there.
        order = np.lexsort(tuple(reversed([slot, *keys])))
        packed = np.stack([slot[order], *[k[order] for k in keys]], axis=1)
        last = np.ones(len(order), dtype=bool)
        last[:-1] = np.any(packed[1:] != packed[:-1], axis=1)
        keep = np.sort(order[last]) + start
        for name, arr in self._cols.items():
            arr.splice(start, end, arr.view()[keep])
        self._thinned_upto = start + len(keep)
        self._rows_at_last_thin = len(self)
