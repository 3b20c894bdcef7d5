import math

import pytest

from radadapt.errors import TrainingStopped
from radadapt.train.guards import Guards

ok = lambda m: None  # noqa: E731


def test_nan_loss_and_nan_gradients_stop_at_once():
    with pytest.raises(TrainingStopped) as info:
        Guards().check(4, math.nan, [1.0], {}, fp16=False, collapse_reason=ok)
    assert info.value.code == "train.nan_loss" and "step 5" in str(info.value)
    with pytest.raises(TrainingStopped) as info:
        Guards().check(0, 1.0, [math.inf], {}, fp16=False, collapse_reason=ok)
    assert info.value.code == "train.nan_grad"


def test_fp16_overflow_is_skipped_until_it_persists():
    g = Guards(fp16_skips=3)
    assert g.check(0, 1.0, [math.inf], {}, fp16=True, collapse_reason=ok) is True
    assert g.check(1, 1.0, [1.0], {}, fp16=True, collapse_reason=ok) is False  # recovered: counter reset
    g.check(2, 1.0, [math.inf], {}, fp16=True, collapse_reason=ok)
    g.check(3, 1.0, [math.inf], {}, fp16=True, collapse_reason=ok)
    with pytest.raises(TrainingStopped) as info:
        g.check(4, 1.0, [math.inf], {}, fp16=True, collapse_reason=ok)
    assert info.value.code == "train.fp16_overflow"


def test_exploding_gradients_need_history_and_patience():
    g = Guards(grad_factor=10, grad_patience=2)
    for i in range(25):
        g.check(i, 1.0, [1.0, 0.5], {}, fp16=False, collapse_reason=ok)
    g.check(25, 1.0, [50.0], {}, fp16=False, collapse_reason=ok)  # one spike is tolerated
    g.check(26, 1.0, [1.0], {}, fp16=False, collapse_reason=ok)
    g.check(27, 1.0, [50.0], {}, fp16=False, collapse_reason=ok)
    with pytest.raises(TrainingStopped) as info:
        g.check(28, 1.0, [60.0], {}, fp16=False, collapse_reason=ok)
    assert info.value.code == "train.exploding_gradients"


def test_collapse_needs_consecutive_steps_and_state_round_trips():
    g = Guards(collapse_patience=3)
    bad = lambda m: "uniform" if m.get("x") else None  # noqa: E731
    g.check(0, 1.0, [1.0], {"x": 1}, fp16=False, collapse_reason=bad)
    g.check(1, 1.0, [1.0], {"x": 1}, fp16=False, collapse_reason=bad)
    g2 = Guards(collapse_patience=3)
    g2.load_state(g.state())  # a resumed run remembers the streak
    with pytest.raises(TrainingStopped) as info:
        g2.check(2, 1.0, [1.0], {"x": 1}, fp16=False, collapse_reason=bad)
    assert info.value.code == "train.collapse" and "uniform" in str(info.value)
