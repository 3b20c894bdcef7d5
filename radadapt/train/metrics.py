"""Training metrics: one JSON object per logged step in ``RUN/metrics.jsonl``, and TensorBoard when installed.

Rows are appended and flushed line by line (a kill loses at most the line being written). On resume the file
is cut back to the checkpoint's step, dropping rows the resumed run will write again and any torn last line,
so a resumed run's file reads as if it had never stopped. Only rank 0 writes. Values are plain numbers: loss
parts, schedule values, gradient norms, throughput; never anything about images or patients.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from radadapt import atomic

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    def __init__(self, run_dir: Path, *, tensorboard: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._tb = _tensorboard_writer(Path(run_dir) / "tensorboard") if tensorboard else None

    def write(self, row: dict[str, Any]) -> None:
        row = {k: _clean(v) for k, v in row.items()}
        self._fh.write(json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n")
        self._fh.flush()
        if self._tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard_writer(folder: Path):  # noqa: ANN202 - SummaryWriter or None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(folder))


def truncate(run_dir: Path, last_step: int) -> int:
    """Keep rows with ``step <= last_step`` (and drop unreadable lines); returns the rows kept."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return 0
    kept = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and int(row.get("step", 0)) <= last_step:
                kept.append(row)
    atomic.write_jsonl(path, kept)
    return len(kept)


def read(run_dir: Path) -> list[dict[str, Any]]:
    return list(atomic.read_jsonl(Path(run_dir) / METRICS_FILE))
