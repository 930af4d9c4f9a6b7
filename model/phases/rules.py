"""Rule phases: runs of samples whose stacks match the same rule (built-in or the user's), nested by stack depth.

What a rule matches is model.rules' business; this module only turns the
matches of one thread's samples, in time order, into intervals. Must never
read files or rules of its own, nor import textual or rich.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradetop.model.phases.slices import ThreadSlice, thread_slices
from gradetop.model.phases.types import Phase
from gradetop.model.profile import Profile
from gradetop.model.rules import BUILTIN_RULES, Rule, rule_of_frames

RULE_GAP_S = 0.05
"""Rule matches interrupted for less than this are one phase."""


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
    for thread in thread_slices(profile.timeline, single_only=True):
        labels = [paths[int(s)] for s in profile.timeline.stack[thread.idx]]
        _RuleCut(rules, thread, labels, phases).runs(0, len(labels), level=0, prefix=())
    return phases


def _node_rule_paths(profile: Profile, rules: tuple[Rule, ...]) -> list[tuple[int, ...]]:
    """For each trie node, the rules matched along its stack, outermost first, each once."""
    stacks = profile.stacks
    frame_rule = rule_of_frames(profile.frames.frames, rules)
    parent = stacks.parent.view()
    frame = stacks.frame.view()
    paths: list[tuple[int, ...]] = [()] * len(stacks)
    for node in range(1, len(stacks)):
        above = paths[int(parent[node])]
        hit = frame_rule[int(frame[node])]
        paths[node] = above + (hit,) if hit >= 0 and hit not in above else above
    return paths


@dataclass(frozen=True)
class _RuleCut:
    """One thread's samples with the rules each matched (`labels`, outermost first); phases go to `out`."""

    rules: tuple[Rule, ...]
    thread: ThreadSlice
    labels: list[tuple[int, ...]]
    out: list[Phase]

    def runs(self, lo: int, hi: int, level: int, prefix: tuple[int, ...]) -> None:
        """Contiguous runs of one rule at `level` in samples [lo, hi) become phases; each run is cut at the next level."""
        t, w = self.thread.t, self.thread.w
        current, start_i = None, lo
        last_t = None
        for i in range(lo, hi):
            lab = self.labels[i]
            rule = lab[level] if len(lab) > level and lab[:level] == prefix else None
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
        t, w = self.thread.t, self.thread.w
        start = float(t[i0] - w[i0] / 2)
        end = float(t[i1 - 1] + w[i1 - 1] / 2)
        names = [self.rules[r].name for r in prefix + (rule,)]
        self.out.append(Phase(names[-1], "/".join(names), "rule", self.thread.pid, self.thread.tid, start, end, level))
        self.runs(i0, i1, level + 1, prefix + (rule,))
