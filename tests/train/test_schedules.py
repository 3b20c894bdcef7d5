import numpy as np
import pytest

from radadapt.train import schedules


def test_cosine_matches_dinov2_arithmetic():
    s = schedules.cosine(1.0, 0.1, 10, warmup=4)
    np.testing.assert_allclose(s[:4], np.linspace(0, 1.0, 4))
    t = np.arange(6)
    np.testing.assert_allclose(s[4:], 0.1 + 0.45 * (1 + np.cos(np.pi * t / 6)))
    assert len(s) == 10 and s[4] == 1.0 and s[-1] > 0.1


def test_freeze_warmup_and_short_runs():
    s = schedules.cosine(2.0, 0.0, 6, warmup=2, freeze=2, warmup_start=0.5)
    assert s[:2].tolist() == [0.0, 0.0] and s[2:4].tolist() == [0.5, 2.0]
    assert len(schedules.cosine(1.0, 0.0, 3, warmup=10)) == 3  # warm-up longer than the run is cut


def test_teacher_temperature_and_gates():
    s = schedules.linear_warmup(0.04, 0.07, 10, 4)
    np.testing.assert_allclose(s[:4], [0.04, 0.05, 0.06, 0.07])
    assert s[4:].tolist() == [0.07] * 6
    assert schedules.gate(5, 2).tolist() == [0, 0, 1, 1, 1]


def test_value_at_holds_the_last_value():
    s = schedules.constant(3.0, 4)
    assert schedules.value_at(s, 0) == 3.0 and schedules.value_at(s, 100) == 3.0
    with pytest.raises(ValueError):
        schedules.value_at(np.zeros(0), 0)
