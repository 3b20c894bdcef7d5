import math
import sys
import types

from radadapt.train import metrics


def test_rows_truncate_back_to_a_checkpoint_and_torn_lines_are_dropped(tmp_path):
    log = metrics.MetricsLog(tmp_path, tensorboard=False)
    for step in range(1, 6):
        log.write({"step": step, "loss": 1.0 / step, "grad_norm": [1.0, math.inf]})
    log.close()
    with open(tmp_path / metrics.METRICS_FILE, "a") as fh:
        fh.write('{"step": 6, "loss": 0.1')  # a kill in the middle of a line
    assert metrics.truncate(tmp_path, 3) == 3
    rows = metrics.read(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[0]["grad_norm"] == [1.0, "inf"]


def test_tensorboard_is_used_when_installed(tmp_path, monkeypatch):
    calls = []

    class Writer:
        def __init__(self, log_dir):
            calls.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append("closed")

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    log = metrics.MetricsLog(tmp_path)
    log.write({"step": 7, "loss": 2.5, "grad_norm": [1.0]})
    log.close()
    assert ("train/loss", 2.5, 7) in calls and calls[-1] == "closed"
    assert not any(c[0] == "train/grad_norm" for c in calls if isinstance(c, tuple))
