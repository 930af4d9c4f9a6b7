"""All phases of a profile: markers, rules (the user's, then built-in) and automatic phases, in one time-ordered list.

Must never draw phases (model.lanes does), nor import textual or rich.
"""

from __future__ import annotations

from dataclasses import replace

from gradetop.model.phases.auto import auto_phases
from gradetop.model.phases.markers import marker_phases
from gradetop.model.phases.rules import rule_phases
from gradetop.model.phases.types import Phase
from gradetop.model.profile import Profile
from gradetop.model.roles import process_roles, role_prefix
from gradetop.model.rules import BUILTIN_RULES, Rule


def all_phases(profile: Profile, rules: tuple[Rule, ...] = (), auto: bool = True) -> list[Phase]:
    """Marker, rule (user's first, then built-in) and automatic phases, in time order.

    Rule phases of a worker process carry its role, as automatic ones do: the main process's
    `data loading` (waiting for batches) and its workers' (making them) are different phases.
    """
    with profile.lock:
        roles = process_roles(profile)
        markers = marker_phases(profile)
        phases = markers + [_with_role(p, roles) for p in rule_phases(profile, tuple(rules) + BUILTIN_RULES)]
        if auto:
            # Where the user marked a stretch, the automatic phase saying the same is noise.
            phases += [p for p in auto_phases(profile, roles=roles) if not _covered(p, markers)]
    return sorted(phases, key=lambda p: (p.start, p.depth, p.source, p.pid, p.tid))


def _with_role(phase: Phase, roles: dict[int, str]) -> Phase:
    prefix = role_prefix(roles.get(phase.pid, ""))
    if not prefix:
        return phase
    return replace(phase, name=prefix + phase.name if phase.depth == 0 else phase.name, path=prefix + phase.path)


def _covered(phase: Phase, markers: list[Phase], share: float = 0.8) -> bool:
    for m in markers:
        if m.pid == phase.pid and m.tid == phase.tid:
            overlap = min(m.end, phase.end) - max(m.start, phase.start)
            if overlap >= share * phase.duration and overlap >= share * m.duration:
                return True
    return False
