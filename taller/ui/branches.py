"""Branches of a thread as the chat shows them: ``◀ 2/3 ▶`` on the turn that forked (no Textual).

Regenerating an answer or editing an earlier message keeps the old continuation as a branch
(:meth:`taller.agent.session.Agent.branches` lists them: one per leaf of the checkpoint tree,
oldest first, each with the ``fork_index`` of its nearest fork: the history index of the first
message of its own). The chat marks the user message of the turn where branches part from the
current one, counting the current branch and those that part there; ``Alt+←``/``Alt+→`` switch
among them. Both a regeneration and an edit fork before the turn's user message, so the mark
sits on that message, which is where the user acts on it.

Where another branch parts from the current one is the smaller of the two fork indexes: each
branch's fork index is the deepest fork on its own path, and the two paths share every fork
above the shallower one. (In a tree forked in two different subtrees below a common fork, the
true parting point can be shallower still; such a branch is then grouped at the deeper turn,
and switching there still reaches it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fork:
    """The branches that part at one turn: their ids oldest first, and which one is shown."""

    turn_index: int  # history index of the turn's user message
    branch_ids: tuple[str, ...]
    current: int  # position of the current branch in branch_ids

    @property
    def label(self) -> str:
        return f"◀ {self.current + 1}/{len(self.branch_ids)} ▶"

    def neighbour(self, step: int) -> str:
        """The branch ``step`` places away (wrapping around), to switch to."""
        return self.branch_ids[(self.current + step) % len(self.branch_ids)]


def turn_of(history: list[dict[str, Any]], index: int) -> int | None:
    """The history index of the user message at or before ``index`` (the turn it belongs to)."""
    turn = None
    for entry in history:
        position = entry.get("index")
        if not isinstance(position, int) or position > index:
            continue
        if entry.get("role") == "user" and (turn is None or position > turn):
            turn = position
    return turn


def forks(branches: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[int, Fork]:
    """Turn index → its :class:`Fork`, for every turn of the current branch where others part."""
    current = next((b for b in branches if b.get("current")), None)
    if current is None or len(branches) < 2:
        return {}
    order = {str(b.get("branch_id")): position for position, b in enumerate(branches)}
    members: dict[int, set[str]] = {}
    current_fork = current.get("fork_index") if isinstance(current.get("fork_index"), int) else None
    for branch in branches:
        if branch is current or not isinstance(branch.get("fork_index"), int):
            continue
        parting = branch["fork_index"] if current_fork is None else min(branch["fork_index"], current_fork)
        turn = turn_of(history, parting)
        if turn is None:
            turn = min((e["index"] for e in history if isinstance(e.get("index"), int)), default=0)
        members.setdefault(turn, set()).add(str(branch.get("branch_id")))
    out = {}
    current_id = str(current.get("branch_id"))
    for turn, ids in members.items():
        ordered = tuple(sorted(ids | {current_id}, key=lambda branch_id: order.get(branch_id, 0)))
        out[turn] = Fork(turn, ordered, ordered.index(current_id))
    return out


def labels(found: dict[int, Fork]) -> dict[int, str]:
    """Turn index → the label its message shows."""
    return {turn: fork.label for turn, fork in found.items()}
