"""``--time-budget``: turn wall-clock compute into a fixed number of optimizer steps.

The study compared models at equal wall-clock compute (Ilse et al. 2025, research note rad_dino.md §0), and every
schedule here is indexed by step, so the budget must become a step count *before* training starts: warm-up
fractions, cosine decays and the EMA momentum all depend on it. The trainer times ``budget_measure_steps`` real
steps (the real data loader, forward, backward, optimizer, EMA; the first two, which include worker start-up, are
not counted), puts every state back as it was, writes a first checkpoint (timing that too), and then fixes

    steps = floor((budget - time already spent - checkpoint writes) / seconds per step)

where checkpoint writes = (one per ``checkpoint_minutes`` of the remaining time + the final one + the export)
x the measured checkpoint time. The step count is recorded in run.json; a resumed run keeps it, so a run's
length never depends on how often it was interrupted.
"""

from __future__ import annotations

import math
import re

from radadapt.errors import UsageError

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(text: str) -> float:
    """'6h', '90m', '1h30m', '1.5h', '2d', '45s' -> seconds. A bare number is refused (hours or minutes?)."""
    s = text.strip().lower().replace(" ", "")
    parts = _PART.findall(s)
    if not s or "".join(a + b for a, b in parts) != s:
        raise UsageError(
            "train.bad_duration",
            f"cannot read the time budget '{text}'",
            hint="use a number with a unit: 6h, 90m, 1h30m, 2d",
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError("train.bad_duration", f"the time budget '{text}' is not positive")
    return seconds


def steps_for_budget(budget_s: float, spent_s: float, step_s: float, checkpoint_s: float,
                     checkpoint_minutes: float) -> int:
    """The number of optimizer steps that fit in what is left of the budget (see the module docstring)."""
    remaining = budget_s - spent_s
    writes = remaining / (checkpoint_minutes * 60.0) + 2.0
    usable = remaining - writes * checkpoint_s
    steps = math.floor(usable / step_s) if step_s > 0 else 0
    if steps < 1:
        raise UsageError(
            "train.budget_too_short",
            f"the time budget leaves no time to train (a step takes {step_s:.2f}s and {spent_s:.0f}s are already "
            f"spent on loading and measuring)",
            hint="give a longer --time-budget, or use --max-steps",
        )
    return steps
