"""Phases: which part of the workflow ran when, on which thread, what it cost, and why it was slow.

A phase is a named interval of one thread, nested in a tree (workflow >
stage > step). Three sources give phases, merged into one list (`merge`):

- markers: `gradetop.phase(...)` in user code (exact edges, user's names);
- rules: frames matching built-in or user patterns (model.rules);
- automatic: each thread's timeline cut where the dominant frame at the
  depth its work splits changes, with a minimum length against noise.

Costs come straight from the samples and readings of that thread and
process in that interval (model.phase_costs). Everything here is a pure
function of a Profile. Must never import the pictures (model.views,
model.lanes) nor textual or rich: pictures are drawn from phases, not the
other way round.
"""

from gradetop.model.phases.auto import AUTO_MIN_S, auto_phases
from gradetop.model.phases.markers import marker_phases
from gradetop.model.phases.merge import all_phases
from gradetop.model.phases.rules import RULE_GAP_S, rule_phases
from gradetop.model.phases.types import Phase, PhaseCost

__all__ = ["AUTO_MIN_S", "RULE_GAP_S", "Phase", "PhaseCost", "all_phases", "auto_phases", "marker_phases",
           "rule_phases"]
