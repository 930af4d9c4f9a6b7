"""Rule phases: runs of samples whose stacks match the same rule (built-in or the user's), nested by stack depth.

What a rule matches is model.rules' business; this module only turns the
matches of one thread's samples, in time order, into intervals. Must never
read files or rules of its own, nor import textual or rich.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradetop.model.phases.naming import is_import
from gradetop.model.phases.slices import ThreadSlice, thread_slices
from gradetop.model.phases.types import Phase
from gradetop.model.profile import Profile
from gradetop.model.rules import BUILTIN_RULES, Rule, rule_of_frames

RULE_GAP_S = 0.05
"""Rule matches interrupted for less than this are one phase."""
MIN_SAMPLES = 2
"""A rule phase needs this many samples: one sample's jitter (a tick that caught backward calling a module
hook, a timestamp a few ms off) is never a phase of its own."""
MIN_TICKS = 1.5
"""...and lasts this many ticks: py-spy's stretches become samples of at most a tick, so a stack seen for
just over one tick (a 10.8 ms 'backward' nested in 'forward' at 100 Hz) is two samples, and no phase."""


def rule_phases(profile: Profile, rules: tuple[Rule, ...] = BUILTIN_RULES) -> list[Phase]:
    """Runs of samples whose stacks match the same rules, nested by stack depth.

    Only single samples count: an old bucket of merged samples (model.timeline
    compaction) no longer says in which order its stacks ran, so rules
    would turn each bucket into overlapping phases of its full weight.
    """
    if not rules or len(profile.timeline) == 0:
        return []
    paths = _node_rule_paths(profile, rules)
    if not any(paths):
        return []
    phases: list[Phase] = []
    min_s = MIN_TICKS / (profile.meta.rate_hz or 100.0)
    for thread in thread_slices(profile.timeline, single_only=True):
        labels = [paths[int(s)] for s in profile.timeline.stack[thread.idx]]
        _RuleCut(rules, thread, labels, phases, min_s).runs(0, len(labels), level=0, prefix=())
    return phases


def _node_rule_paths(profile: Profile, rules: tuple[Rule, ...]) -> list[tuple[int, ...]]:
    """For each trie node, the rules matched along its stack, outermost first, each once.

    Below an import frame built-in rules match no more: a module's top-level code run by `import torch`
    is an import, not a backward pass, whatever file it is in. The user's rules still match there.
    """
    stacks = profile.stacks
    frames = profile.frames.frames
    frame_rule = rule_of_frames(frames, rules)
    builtin = {i for i, rule in enumerate(rules) if any(rule is b for b in BUILTIN_RULES)}
    importing = [is_import(f) for f in frames]
    parent = stacks.parent.view()
    frame = stacks.frame.view()
    paths: list[tuple[int, ...]] = [()] * len(stacks)
    in_import = [False] * len(stacks)
    for node in range(1, len(stacks)):
        up = int(parent[node])
        above = paths[up]
        fid = int(frame[node])
        in_import[node] = in_import[up] or importing[fid]
        hit = frame_rule[fid]
        if hit in builtin and in_import[node]:
            hit = -1
        paths[node] = above + (hit,) if hit >= 0 and hit not in above else above
    return paths


@dataclass(frozen=True)
class _RuleCut:
    """One thread's samples with the rules each matched (`labels`, outermost first); phases go to `out`."""

    rules: tuple[Rule, ...]
    thread: ThreadSlice
    labels: list[tuple[int, ...]]
    out: list[Phase]
    min_s: float = 0.0
    """Shortest phase: MIN_TICKS of the asked rate (a stretch just over a tick is two samples)."""

    def runs(self, lo: int, hi: int, level: int, prefix: tuple[int, ...]) -> None:
        """Contiguous runs of one rule at `level` in samples [lo, hi) become phases; each run is cut at the next level."""
        t, w = self.thread.t, self.thread.w
        current, start_i = None, lo
        last_t = None
        at = [lab[level] if len(lab) > level and lab[:level] == prefix else None for lab in self.labels[lo:hi]]
        # One sample unlike both its neighbours, which agree, is jitter: it takes their rule.
        for k in range(1, len(at) - 1):
            if at[k] != at[k - 1] and at[k - 1] == at[k + 1] and at[k - 1] is not None:
                at[k] = at[k - 1]
        for i in range(lo, hi):
            rule = at[i - lo]
            gap = last_t is not None and t[i] - last_t > RULE_GAP_S + w[i]
            if rule != current or gap:
                if current is not None:
                    self.close(current, start_i, i, level, prefix)
                current, start_i = rule, i
            if rule is not None:
                last_t = t[i]
        if current is not None:
            self.close(current, start_i, hi, level, prefix)

    def close(self, rule: int, i0: int, i1: int, level: int, prefix: tuple[int, ...]) -> None:
        if i1 - i0 < MIN_SAMPLES:
            return
        t, w = self.thread.t, self.thread.w
        start = float(t[i0] - w[i0] / 2)
        end = float(t[i1 - 1] + w[i1 - 1] / 2)
        if end - start < self.min_s:
            return
        names = [self.rules[r].name for r in prefix + (rule,)]
        self.out.append(Phase(names[-1], "/".join(names), "rule", self.thread.pid, self.thread.tid, start, end, level))
        self.runs(i0, i1, level + 1, prefix + (rule,))
