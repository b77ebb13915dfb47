"""The shape of a thread's checkpoint tree, read from LangGraph's ``checkpoints`` table.

LangGraph's ``SqliteSaver`` stores every checkpoint of a thread with the one it continued
(``parent_checkpoint_id``). A regenerated answer or an edited message runs from an earlier
checkpoint, so a thread is a tree and each leaf ends a branch. Reading only the ids, parents and
metadata here (never the pickled state) keeps listing branches and finding a fork point cheap;
the agent deserialises only the few checkpoints it then needs. Nothing here writes that table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from taller.agent.store.threads import ThreadStore


@dataclass
class CheckpointTree:
    """Every checkpoint of one thread (top-level namespace): parent, children, what wrote it."""

    parents: dict[str, str | None] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # "input", "loop", "update", "fork"
    children: dict[str, list[str]] = field(default_factory=dict)

    def leaves(self) -> list[str]:
        """The checkpoints nothing continues: one per branch, oldest first (ids sort by time)."""
        return sorted(checkpoint for checkpoint in self.parents if not self.children.get(checkpoint))

    def newest(self) -> str | None:
        return max(self.parents) if self.parents else None

    def chain(self, checkpoint_id: str) -> list[str]:
        """``checkpoint_id`` and its ancestors, newest first."""
        out: list[str] = []
        seen: set[str] = set()
        current: str | None = checkpoint_id
        while current is not None and current in self.parents and current not in seen:
            seen.add(current)
            out.append(current)
            current = self.parents[current]
        return out

    def branch_start(self, leaf: str) -> str:
        """The first checkpoint of ``leaf``'s own part: the child of its nearest fork (or the root)."""
        chain = self.chain(leaf)
        for below, above in zip(chain, chain[1:]):
            if len(self.children.get(above, ())) > 1:
                return below
        return chain[-1] if chain else leaf

    def fork_point(self, leaf: str) -> str | None:
        """The nearest ancestor of ``leaf`` where another branch leaves it (None: a lone branch)."""
        for above in self.chain(leaf)[1:]:
            if len(self.children.get(above, ())) > 1:
                return above
        return None


def checkpoint_tree(store: ThreadStore, thread_id: str) -> CheckpointTree:
    """The tree of ``thread_id``'s checkpoints (empty for a thread with none)."""
    with store.lock:
        rows = store.connection.execute(
            "SELECT checkpoint_id, parent_checkpoint_id, metadata FROM checkpoints "
            "WHERE thread_id = ? AND checkpoint_ns = ''", (thread_id,)).fetchall()
    tree = CheckpointTree()
    for checkpoint_id, parent, metadata in rows:
        tree.parents[checkpoint_id] = parent
        tree.sources[checkpoint_id] = _source(metadata)
    for checkpoint_id, parent in tree.parents.items():
        if parent is not None and parent in tree.parents:
            tree.children.setdefault(parent, []).append(checkpoint_id)
    return tree


def _source(metadata: bytes | str | None) -> str:
    """What wrote a checkpoint (LangGraph's metadata ``source``), "" when unreadable."""
    try:
        return str(json.loads(metadata or b"{}").get("source") or "")
    except (ValueError, TypeError, AttributeError):
        return ""
