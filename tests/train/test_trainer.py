"""Real training runs of the tiny RAD-DINO on a small synthetic store, through ``radadapt.train.run``."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY_DINO

from radadapt.errors import TrainingStopped
from radadapt.manifest import Store
from radadapt.train import metrics
from radadapt.train.data import select_training_set
from radadapt.train.run import TrainRequest, start


def _request(store, weights, out, **kw):
    overrides = {"num_workers": 0, "log_every": 1, "dino": dict(TINY_DINO)}
    overrides.update(kw.pop("overrides", {}))
    return TrainRequest(store=store, weights=weights, out=out, batch_size=kw.pop("batch_size", 8),
                        overrides=overrides, **kw)


def _cls_features(model_dir, images):
    from radadapt.models import registry

    enc = registry.load_encoder(model_dir)
    with torch.no_grad():
        return enc.features(enc.preprocess(images))["cls"]


def test_short_run_lowers_the_loss_changes_the_features_and_writes_the_run_contract(train_store, tiny_weights, tmp_path):
    out = tmp_path / "run"
    res = start(_request(train_store, tiny_weights, out, max_steps=24,
                         overrides={"dino": {**TINY_DINO, "lr": 2e-3, "lr_warmup": 0.05}}))
    assert res["status"] == "completed" and res["steps"] == 24
    rows = metrics.read(out)
    assert [r["step"] for r in rows] == list(range(1, 25))
    losses = np.array([r["loss"] for r in rows])
    assert np.isfinite(losses).all()
    # What the student optimises falls: KL(teacher || student) of the DINO loss and the iBOT loss. (The total
    # also carries the teacher's entropy, which rises here while the centre warms up from zero; see
    # docs/training.md "Reading the loss".)
    kl, ibot = np.array([r["dino_kl"] for r in rows]), np.array([r["ibot_loss"] for r in rows])
    assert kl[-6:].mean() < kl[:6].mean() - 0.5, kl.round(2)
    assert ibot[-6:].mean() < ibot[:6].mean() - 0.5, ibot.round(2)
    assert losses[4:10].mean() < losses[:4].mean() - 1.0, losses.round(2)
    assert rows[0]["lr"] == 0.0 and rows[5]["lr"] > rows[-1]["lr"]  # warm-up, then cosine decay
    assert rows[0]["momentum"] < rows[-1]["momentum"] <= 1.0
    # the run directory contract (docs/architecture.md section 5)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["steps"] == {**run["steps"], "planned": 24, "done": 24}
    assert run["family"] == "rad_dino" and run["store"]["store_id"] == "test-store-0"
    assert set(run["base_model"]["files"]) >= {"config.json", "model.safetensors", "dino_head.safetensors"}
    assert json.loads((out / "config.json").read_text())["train"]["dino"]["lr"] == 2e-3
    ts = select_training_set(Store(train_store))
    assert (out / "train_patients.txt").read_text().split() == ts.patients
    held_out = {r.patient_key for r in Store(train_store).records() if r.split != "train"}
    assert not held_out & set(ts.patients)
    assert (out / "checkpoints" / "latest.json").is_file()
    # final/ is the EMA teacher in the transformers layout (+ Meta files and head)
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(out / "final")
    assert type(hf).__name__ == "Dinov2Model" and hf.config.drop_path_rate == 0.0
    assert {"model.safetensors", "backbone_compatible.safetensors", "dino_head.safetensors"} <= set(res["final_files"])
    images = [np.array(Store(train_store).image(r)) for r in list(Store(train_store).records("val"))[:4]]
    before, after = _cls_features(tiny_weights, images), _cls_features(out, images)
    assert (after - before).norm() / before.norm() > 1e-3  # training changed what the encoder computes
    assert torch.isfinite(after).all()


def test_dry_run_plans_and_writes_nothing(train_store, tiny_weights, tmp_path):
    out = tmp_path / "never"
    plan = start(_request(train_store, tiny_weights, out, dry_run=True, subset=20))
    assert not out.exists()
    assert plan["data"]["images_used"] == 20 and plan["batch"]["global"] == 8
    assert plan["steps"]["planned"] == int(np.ceil(100 * 20 / 8))  # [train] epochs = 100 passes
    assert plan["memory_gib_per_process"]["total_estimate"] > 0 and plan["disk_gib"]["total_estimate"] > 0
    assert any("prototypes" in r for r in plan["rules"])
    assert "time" in " ".join(__import__("radadapt.train.plan", fromlist=["plan_lines"]).plan_lines(plan))


def test_collapse_stops_a_real_run_and_keeps_the_last_good_checkpoint(train_store, tiny_weights, tmp_path):
    from radadapt.models import weights as wf

    collapsed = tmp_path / "collapsed-head"
    shutil.copytree(tiny_weights, collapsed)
    head, meta = wf.load_file(collapsed / "dino_head.safetensors")
    head["last_layer.weight_g"].zero_()  # every prototype logit is 0: uniform teacher outputs
    wf.save_file(collapsed / "dino_head.safetensors", head, meta)
    out = tmp_path / "run"
    with pytest.raises(TrainingStopped) as info:
        start(_request(train_store, collapsed, out, max_steps=10,
                       overrides={"guard_collapse_patience": 3, "checkpoint_steps": 2}))
    assert info.value.code == "train.collapse" and "step 3" in str(info.value)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "stopped" and run["stop"]["code"] == "train.collapse"
    assert run["steps"]["done"] == 2 and not (out / "final").exists()
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_and_accumulation_paths_run(train_store, tiny_weights, tmp_path, precision):
    out = tmp_path / precision
    res = start(_request(train_store, tiny_weights, out, max_steps=3, batch_size=4, accum=2, precision=precision))
    rows = metrics.read(out)
    assert res["status"] == "completed" and len(rows) == 3 and np.isfinite([r["loss"] for r in rows]).all()
    assert json.loads((out / "run.json").read_text())["layout"]["global_batch"] == 8


def test_time_budget_fixes_the_schedule_before_training(train_store, tiny_weights, tmp_path, monkeypatch):
    from radadapt.train.trainer import Trainer

    measured = []
    real = Trainer.measure_step_seconds

    def measure(self, n_steps, provisional_total):
        measured.append(real(self, n_steps, provisional_total))  # really runs (and undoes) the steps
        return 600.0  # then pretend a step takes 10 minutes, so the arithmetic is checkable on any machine

    monkeypatch.setattr(Trainer, "measure_step_seconds", measure)
    out = tmp_path / "budget"
    res = start(_request(train_store, tiny_weights, out, time_budget="1h", batch_size=4,
                         overrides={"budget_measure_steps": 3}))
    run = json.loads((out / "run.json").read_text())
    assert measured and measured[0] > 0
    assert run["steps"]["planned"] == res["steps"] == run["steps"]["done"] == 5  # (3600 - a few s) // 600
    assert run["steps"]["time_budget"] == "1h"
    assert len(metrics.read(out)) == 5  # the measured steps were undone, not logged


def test_measuring_steps_leaves_no_trace(train_store, tiny_weights, tmp_path):
    from radadapt.train.distributed import DistEnv
    from radadapt.train.run import _Session, _train_section

    cfg = _train_section(_request(train_store, tiny_weights, None, batch_size=4))
    s = _Session("rad_dino", train_store, tiny_weights, cfg, None, "cpu", DistEnv())
    trainer = s.trainer(tmp_path)
    before = {k: v.clone() for k, v in s.objective.state_dict().items()}
    rng = torch.get_rng_state()
    assert trainer.measure_step_seconds(3, provisional_total=100) > 0
    after = s.objective.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(rng, torch.get_rng_state()) and not trainer.optimizer.state


def test_sigterm_checkpoints_at_the_step_boundary_and_resume_finishes(train_store, tiny_weights, tmp_path,
                                                                       monkeypatch):
    import os
    import signal

    from radadapt.train.run import resume

    original = metrics.MetricsLog.write

    def write(self, row):
        original(self, row)
        if row["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what a cluster scheduler sends before preempting

    monkeypatch.setattr(metrics.MetricsLog, "write", write)
    out = tmp_path / "run"
    with pytest.raises(TrainingStopped) as info:
        start(_request(train_store, tiny_weights, out, max_steps=6, batch_size=4))
    assert info.value.code == "train.interrupted" and "--resume" in info.value.hint
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["steps"]["done"] == 3  # the step in flight finished first
    monkeypatch.setattr(metrics.MetricsLog, "write", original)
    res = resume(out)
    assert res["status"] == "completed" and [r["step"] for r in metrics.read(out)] == list(range(1, 7))
