"""Two processes with gloo on CPU (launched by torchrun, through the real CLI) train exactly what one process
trains on the same global batch.

Tolerance: losses within 1e-5 relative and weights within 1e-6 absolute. The only difference is the order of
float additions (gradients are summed across ranks by all-reduce instead of inside one batched matmul), which
moves float32 results by a few ulps per step. Drop path is off: its random draws are per rank by design.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from radadapt.train.run import TrainRequest, start

CONFIG = """
[train]
num_workers = 0
log_every = 1
precision = "fp32"

[train.dino]
global_crop_size = 56
local_crop_size = 28
local_crops = 4
head_hidden_dim = 64
head_bottleneck_dim = 32
drop_path = 0.0
"""


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(train_store, tiny_weights, tmp_path):
    from safetensors.torch import load_file

    cfg = tmp_path / "radadapt.toml"
    cfg.write_text(CONFIG)
    single = tmp_path / "single"
    start(TrainRequest(store=train_store, weights=tiny_weights, out=single, max_steps=5, batch_size=4, config=cfg))
    double = tmp_path / "ddp"
    env = {**os.environ, "RADADAPT_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "radadapt.cli", "train", "--model", "rad-dino", "--store", str(train_store), "--weights",
         str(tiny_weights), "--out", str(double), "--max-steps", "5", "--batch-size", "2", "--config", str(cfg),
         "--json"],
        env=env, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"status": "completed"') == 1  # only rank 0 prints
    run = json.loads((double / "run.json").read_text())
    assert run["layout"] == {"batch_size": 2, "accum": 1, "world_size": 2, "global_batch": 4}
    a = [json.loads(line) for line in open(single / "metrics.jsonl")]
    b = [json.loads(line) for line in open(double / "metrics.jsonl")]
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        for key in ("loss", "dino_loss", "ibot_loss", "koleo_loss"):
            assert y[key] == pytest.approx(x[key], rel=1e-5), (x["step"], key)
    for name in ("model.safetensors", "dino_head.safetensors"):
        ta, tb = load_file(single / "final" / name), load_file(double / "final" / name)
        diff = max(float(np.abs(ta[k].numpy() - tb[k].numpy()).max()) for k in ta)
        assert diff < 1e-6, (name, diff)
