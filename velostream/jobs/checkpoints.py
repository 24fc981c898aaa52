"""Durable checkpoints of source-partition state, in a local (or shared) directory.

One file per (consumer group, topic, partition): a JSON header line, then the engine snapshot
bytes (``Engine.snapshot()``), if any. The header holds the offset a successor resumes from and,
for windowed state rebuilt by replay, the watermark that tells replayed records of windows that
were already emitted from records of windows still open. Files are replaced atomically
(write aside, fsync, rename, fsync the directory), so a crash leaves the old checkpoint or the new
one, never a torn one.

The checkpoint is written *before* the offset is committed to Kafka and it is authoritative on
restore, so the two can never disagree in a way that loses data: a crash between them replays a
little more (at-least-once), never less.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class Checkpoint:
    offset: int                    # resume reading here (the first offset not fully accounted for)
    next_offset: int               # the offset after the last record the state had seen
    max_time: Optional[int] = None  # windowed replay: event-time maximum when it was taken
    state: Optional[bytes] = None   # Engine.snapshot() for state replay cannot rebuild cheaply


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class CheckpointStore:
    """``<dir>/<group>/<topic>/<partition>.ckpt``."""

    def __init__(self, directory: str, group: str, topic: str):
        self.root = Path(directory) / _safe(group) / _safe(topic)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, partition: int) -> Path:
        return self.root / f"{int(partition)}.ckpt"

    def save(self, partition: int, ckpt: Checkpoint) -> int:
        """Write atomically and durably; returns the bytes written."""
        header = {"offset": ckpt.offset, "next_offset": ckpt.next_offset, "max_time": ckpt.max_time,
                  "state_bytes": len(ckpt.state) if ckpt.state is not None else None}
        data = json.dumps(header).encode() + b"\n" + (ckpt.state or b"")
        path = self._path(partition)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(data)

    def load(self, partition: int) -> Optional[Checkpoint]:
        try:
            data = self._path(partition).read_bytes()
        except FileNotFoundError:
            return None
        head, _, rest = data.partition(b"\n")
        h = json.loads(head)
        state = None
        if h.get("state_bytes") is not None:
            state = rest[:h["state_bytes"]]
            if len(state) != h["state_bytes"]:
                raise ValueError(f"checkpoint {self._path(partition)} is truncated")
        return Checkpoint(h["offset"], h["next_offset"], h.get("max_time"), state)

    def clear(self) -> None:
        """``velostream run --reset``: forget every checkpoint of this group and topic."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
