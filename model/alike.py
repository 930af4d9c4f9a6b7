"""Processes alike, folded: a job that starts its workers again and again makes hundreds of them.

A DataLoader without persistent workers starts new ones every epoch (a
hundred in a 15 s torch job), and a pool started in a loop does the same.
Listed one by one, they bury what still runs. Ended processes of one kind
(the caller says what makes them alike) are one entry past ALIKE_LISTED;
the report and the process table both fold them.

Must never import textual or rich.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

ALIKE_LISTED = 5
"""Ended processes of one kind are one entry past this many."""


def fold_alike(items: list[T], kind: Callable[[T], Hashable], ended: Callable[[T], bool]) -> list[list[T]]:
    """`items` in their order, each alone, or the ended ones of a kind together at the place of the first."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        if ended(item):
            groups.setdefault(kind(item), []).append(item)
    out, placed = [], set()
    for item in items:
        group = groups.get(kind(item)) if ended(item) else None
        if group is None or len(group) <= ALIKE_LISTED:
            out.append([item])
        elif kind(item) not in placed:
            placed.add(kind(item))
            out.append(group)
    return out
