"""Stop a run that is going wrong, before it damages anything (docs/training.md "Guards").

Checked every optimizer step, on values already averaged over all ranks (so every rank takes the same
decision), *before* the optimizer applies the step: a stopped run's weights are those of the last completed
step, and its last checkpoint, written earlier by construction, is the last good one.

- NaN/inf loss: stop at once (dinov2#143: usually lr too high for the batch, or KoLeo on duplicates).
- Non-finite gradient norm: stop at once in fp32/bf16; under fp16 the loss scaler skips such steps, and only
  ``fp16_skips`` consecutive skips stop the run (the scale can no longer recover).
- Exploding gradients: the pre-clipping norm above ``grad_factor`` x the median of the last 100 finite norms for
  ``grad_patience`` consecutive steps (after 20 steps of history).
- Collapse: the objective's ``collapse_reason`` (for DINO: teacher entropy near its maximum, or every image on
  one prototype) for ``collapse_patience`` consecutive steps (dinov2#272, dino#43).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from radadapt.errors import TrainingStopped

_HISTORY = 100
_MIN_HISTORY = 20


@dataclass
class Guards:
    grad_factor: float = 50.0
    grad_patience: int = 3
    collapse_patience: int = 200
    fp16_skips: int = 20
    hint: str = "the last good checkpoint is kept; start a new run with a lower lr or a larger batch"
    _norms: deque = field(default_factory=lambda: deque(maxlen=_HISTORY))
    _explode_run: int = 0
    _collapse_run: int = 0
    _skip_run: int = 0

    def check(self, step: int, loss: float, grad_norms: list[float], metrics: dict[str, float], *,
              fp16: bool, collapse_reason: Callable[[dict[str, float]], str | None]) -> bool:
        """Raise ``TrainingStopped`` if the step must not be applied. Returns True when the step is a skipped
        fp16 overflow (the scaler will not update the weights)."""
        where = f"at step {step + 1}"
        if not math.isfinite(loss):
            raise TrainingStopped("train.nan_loss", f"the loss became {loss} {where}", hint=self.hint)
        total = math.sqrt(sum(n * n for n in grad_norms)) if grad_norms else 0.0
        if not math.isfinite(total):
            if not fp16:
                raise TrainingStopped("train.nan_grad", f"gradients became non-finite {where}", hint=self.hint)
            self._skip_run += 1
            if self._skip_run >= self.fp16_skips:
                raise TrainingStopped(
                    "train.fp16_overflow",
                    f"{self._skip_run} consecutive fp16 overflows up to step {step + 1}",
                    hint="use --precision bf16 (or fp32); the last good checkpoint is kept",
                )
            return True
        self._skip_run = 0
        if len(self._norms) >= _MIN_HISTORY:
            median = sorted(self._norms)[len(self._norms) // 2]
            if median > 0 and total > self.grad_factor * median:
                self._explode_run += 1
                if self._explode_run >= self.grad_patience:
                    raise TrainingStopped(
                        "train.exploding_gradients",
                        f"gradient norm {total:.3g} is {total / median:.0f}x its recent median {where}",
                        hint=self.hint,
                    )
            else:
                self._explode_run = 0
        self._norms.append(total)
        reason = collapse_reason(metrics)
        if reason is None:
            self._collapse_run = 0
        else:
            self._collapse_run += 1
            if self._collapse_run >= self.collapse_patience:
                raise TrainingStopped(
                    "train.collapse",
                    f"representation collapse {where}: {reason} for {self._collapse_run} steps",
                    hint="the last good checkpoint is kept; start a new run with a lower teacher temperature "
                         "([train.dino] teacher_temp), fewer prototypes or a lower EMA momentum (docs/training.md)",
                )
        return False

    def state(self) -> dict[str, Any]:
        return {"norms": list(self._norms), "explode_run": self._explode_run, "collapse_run": self._collapse_run,
                "skip_run": self._skip_run}

    def load_state(self, state: dict[str, Any]) -> None:
        self._norms = deque(state.get("norms", []), maxlen=_HISTORY)
        self._explode_run = int(state.get("explode_run", 0))
        self._collapse_run = int(state.get("collapse_run", 0))
        self._skip_run = int(state.get("skip_run", 0))
