"""kill -9 in the middle of a real run, `radadapt train --resume`, and the result is bit-identical on CPU."""

import json
import os

import numpy as np
import pytest
from conftest import TINY_DINO
from killing import kill_after_checkpoint

from radadapt.train.run import TrainRequest, start

STEPS, EVERY = 12, 3

CHILD = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from radadapt.train.run import TrainRequest, start
start(TrainRequest(store={store!r}, weights={weights!r}, out={out!r}, max_steps={steps}, batch_size=4,
                   overrides={overrides!r}))
"""


def _overrides(workers):
    return {"num_workers": workers, "log_every": 1, "checkpoint_steps": EVERY, "dino": dict(TINY_DINO)}


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(train_store, tiny_weights, tmp_path, cli):
    from safetensors.torch import load_file

    reference = tmp_path / "reference"
    start(TrainRequest(store=train_store, weights=tiny_weights, out=reference, max_steps=STEPS, batch_size=4,
                       overrides=_overrides(0)))
    killed = tmp_path / "killed"
    code = CHILD.format(tests=os.path.dirname(__file__), store=str(train_store), weights=str(tiny_weights),
                        out=str(killed), steps=STEPS, overrides=_overrides(1))  # a loader worker this time
    stopped_at = kill_after_checkpoint(code, killed, EVERY)
    run = json.loads((killed / "run.json").read_text())
    assert run["status"] == "running" and not (killed / "final").exists()
    assert EVERY <= stopped_at < STEPS

    res = cli("train", "--resume", killed, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "completed"

    ref_rows = [json.loads(line) for line in open(reference / "metrics.jsonl")]
    got_rows = [json.loads(line) for line in open(killed / "metrics.jsonl")]
    assert [r["step"] for r in got_rows] == list(range(1, STEPS + 1))
    for key in ("loss", "dino_loss", "ibot_loss", "koleo_loss", "lr", "momentum", "teacher_temp"):
        assert [r[key] for r in got_rows] == [r[key] for r in ref_rows], key  # exact, not approximate
    for name in ("model.safetensors", "dino_head.safetensors"):
        a, b = load_file(reference / "final" / name), load_file(killed / "final" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k].numpy(), b[k].numpy()), (name, k)
    # resuming a finished run is a no-op
    again = cli("train", "--resume", killed, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "completed"
