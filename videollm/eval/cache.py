"""The prediction cache: one JSONL file per task, one line per generated item, keyed by what made it.

A key is the hash of (task, item id, model identity, generation settings, the exact prompt), so a
cached prediction is reused only for the same question asked the same way of the same model.
Each line is written and flushed (and fsynced) as soon as its item is done, so a run killed at
any moment loses only the requests in flight; a line torn by the kill is ignored on reading.
`--resume` reuses every complete line, so nothing done is re-run and nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Prediction:
    key: str
    task: str
    id: str
    prediction: str | None  # None when the item failed
    error: str | None = None
    retryable: bool = False  # a transient failure (endpoint down): tried again on --resume

    @property
    def ok(self) -> bool:
        return self.error is None and self.prediction is not None


def prediction_key(task: str, item_id: str, model: str, settings: dict[str, Any], prompt: str) -> str:
    blob = json.dumps(
        {"task": task, "id": item_id, "model": model, "settings": settings, "prompt": prompt},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class PredictionCache:
    def __init__(self, path: str | Path, *, resume: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.entries: dict[str, Prediction] = {}
        self.torn_lines = 0
        if resume and self.path.exists():
            self._read()
        elif self.path.exists():
            self.path.unlink()  # a fresh run: earlier predictions in this output folder are replaced

    def _read(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    p = Prediction(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    self.torn_lines += 1
                    continue
                self.entries[p.key] = p
        # drop a torn tail so appended lines start on a fresh line
        if self.torn_lines:
            good = [json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in self.entries.values()]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(good), encoding="utf-8")
            os.replace(tmp, self.path)

    def done(self, key: str) -> Prediction | None:
        """A finished prediction for `key` (transient failures do not count as finished)."""
        p = self.entries.get(key)
        if p is None or (p.error is not None and p.retryable):
            return None
        return p

    def put(self, p: Prediction) -> None:
        line = json.dumps(asdict(p), ensure_ascii=False) + "\n"
        with self._lock:
            self.entries[p.key] = p
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
