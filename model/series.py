"""Resource readings over time: per process (CPU, RSS, IO, threads) and per thread (CPU).

Counters are stored cumulative, as the kernel gives them, so any time window's
usage is a difference of two interpolated values and nothing is lost when old
readings are thinned out.

Must never interpolate or derive usage itself (the readers of a window do),
nor import textual or rich.
"""

from __future__ import annotations

import numpy as np

from gradetop.model.columns import Columns

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


HELD_ROWS = 256
"""Rows `add` holds back before it appends them: a reading is a few rows, and each append costs a few
microseconds a column, as much as the rest of a reading's ingest."""


class Series(Columns):
    """Columnar readings, appended in time order, thinned to `keep_every_s` past `age_s`."""

    def __init__(self, columns: dict[str, type], age_s: float = 600.0, keep_every_s: float = 1.0) -> None:
        super().__init__(columns, 256)
        self.age_s = age_s
        self.keep_every_s = keep_every_s
        self._thinned_upto = 0
        self._rows_at_last_thin = 0
        self._held: list[dict[str, list]] = []
        self._held_rows = 0

    def add(self, rows: dict[str, list]) -> None:
        """Append rows given as lists, column by column: held back until a read or HELD_ROWS of them,
        then appended and thinned at once (a read sees every row added before it, so reads, like adds,
        are under the profile's lock or of a frozen copy)."""
        self._held.append(rows)
        self._held_rows += len(rows["t"])
        if self._held_rows >= HELD_ROWS:
            self._settle()

    def _settle(self) -> None:
        held = self.__dict__.get("_held")
        if held:
            self._held, self._held_rows = [], 0
            self.append(**{name: [v for rows in held for v in rows[name]] for name in self._cols})
            self.thin()

    def frozen(self) -> "Series":
        """These readings as they are now; later appends and thinning do not change them."""
        copy = Series({}, self.age_s, self.keep_every_s)
        copy._cols = self.frozen_columns()  # settles this one first
        copy._thinned_upto = copy._rows_at_last_thin = len(copy)
        return copy

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
