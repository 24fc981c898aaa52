"""Checkpoints of a pipeline job (docs/SQL.md §8): the whole graph's state and every source's
read position, written together at each commit, so a restarted process continues exactly
where the last commit left off (at-least-once: rows written after the last commit may be
written again, none is lost).

A pipeline reads every partition of its Kafka topics in one process (its state is not split by
partition): when the group takes a partition away while the job runs (another consumer joined
the group), the job fails with a clear error instead of going on with part of the input.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Optional

from ..errors import JobError
from .protocols import PartitionedSource, PositionedReader, implements

FORMAT = 1


class PipelineCheckpoint:
    def __init__(self, directory: str, sql: str, readers: dict[str, Any]):
        digest = hashlib.sha256(sql.encode()).hexdigest()[:16]
        self.path = Path(directory) / f"pipeline-{digest}.ckpt"
        self.readers = readers        # source name -> reader
        self.running = False
        self.revoked: Optional[list[int]] = None
        self._positions: dict[str, Any] = {}

    # -- start --------------------------------------------------------------------------------
    def load(self) -> Optional[dict]:
        if not self.path.exists():
            return None
        with open(self.path, "rb") as f:
            state = pickle.load(f)
        if state.get("format") != FORMAT:
            raise JobError(f"checkpoint {self.path}: unsupported format {state.get('format')!r}")
        return state

    def resume(self, engine, reset: bool) -> bool:
        """Restore the engine and the readers' positions from the last checkpoint (unless
        ``reset``); hook the Kafka readers' rebalances. True when a checkpoint was restored."""
        state = None if reset else self.load()
        if reset and self.path.exists():
            self.path.unlink()
        self._positions = state["positions"] if state is not None else {}
        if state is not None:
            engine.restore(state["graph"])
        for name, reader in self.readers.items():
            pos = self._positions.get(name)
            if implements(reader, PartitionedSource):
                reader.set_rebalance_listener(self._on_assign(pos), self._on_revoke)
            elif pos is not None:
                reader.seek(pos)
        self.running = True
        return state is not None

    def _on_assign(self, positions: Optional[dict]):
        def on_assign(partitions: list[int]) -> dict[int, int]:
            if not positions:
                return {}  # no checkpoint: the group's committed offsets
            return {p: int(positions[p]) for p in partitions if p in positions}
        return on_assign

    def _on_revoke(self, partitions: list[int]) -> None:
        if self.running and partitions:
            self.revoked = list(partitions)

    def check(self) -> None:
        """Called once per step: fail when the group took partitions away mid-run."""
        if self.revoked is not None:
            raise JobError(f"the consumer group took partitions {self.revoked} away from this "
                           f"pipeline job (another consumer joined its group?): a pipeline reads "
                           f"every partition in one process; give each job its own group.id")

    # -- commit -------------------------------------------------------------------------------
    def save(self, engine) -> None:
        """The engine's state and the readers' positions, replacing the last checkpoint
        atomically (written aside, then renamed)."""
        state = {"format": FORMAT, "graph": engine.snapshot(), "positions": {
            name: (r.positions() if implements(r, PartitionedSource)
                   else r.position if implements(r, PositionedReader) else None)
            for name, r in self.readers.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=5)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def stop(self) -> None:
        self.running = False
