import pytest

from radadapt.errors import UsageError
from radadapt.train.budget import parse_duration, steps_for_budget


@pytest.mark.parametrize("text,seconds", [("6h", 21600), ("90m", 5400), ("1h30m", 5400), ("1.5h", 5400),
                                          ("2d", 172800), ("45s", 45), (" 2H ", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["6", "", "h", "6 hours", "-1h", "0m", "1h-2m"])
def test_bad_durations_are_one_line_errors(text):
    with pytest.raises(UsageError) as info:
        parse_duration(text)
    assert info.value.code == "train.bad_duration"


def test_steps_fill_the_budget_minus_checkpoint_time():
    # 1 h budget, 60 s spent, 0.5 s/step, 10 s per checkpoint every 15 min: (3540/900 + 2) writes
    steps = steps_for_budget(3600, 60, 0.5, 10, 15)
    assert steps == int((3540 - (3540 / 900 + 2) * 10) / 0.5)
    with pytest.raises(UsageError) as info:
        steps_for_budget(60, 59.9, 1.0, 0.0, 15)
    assert info.value.code == "train.budget_too_short"
