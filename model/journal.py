"""What a Profile took in since it was last written out: the body of the next snapshot chunk.

A recording is written while it runs (model.snapshot.SnapshotWriter), so the
file must get every sample as it was ingested, before the in-memory timeline
merges old rows into buckets. The Profile hands each new piece to its
journal; the writer drains it under the profile's lock. Tables that only
grow (frames, stack nodes) need no copy: a cursor says how far they were
written.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Journal:
    samples: list[dict] = field(default_factory=list)
    """Timeline columns of each ingested batch, as appended (before any compaction)."""
    process_series: list[dict] = field(default_factory=list)
    thread_series: list[dict] = field(default_factory=list)
    notes: list = field(default_factory=list)
    output: list = field(default_factory=list)
    marks: list = field(default_factory=list)
    gpu: list = field(default_factory=list)
    """GPU and host records (model.gpu_records), as ingested."""
    gpu_state: dict | None = None
    """The whole GPU model (GpuModel.to_dict), for a file written in one piece."""
    frames_written: int = 0
    nodes_written: int = 1
    """Stack trie nodes already in the file (node 0, the root, is implied)."""

    def take(self) -> "Journal":
        """The pending pieces, leaving this journal empty but for its cursors."""
        taken = Journal(self.samples, self.process_series, self.thread_series, self.notes, self.output, self.marks,
                        self.gpu, None, self.frames_written, self.nodes_written)
        self.samples, self.process_series, self.thread_series = [], [], []
        self.notes, self.output, self.marks, self.gpu = [], [], [], []
        return taken
