"""`radadapt train` on the command line: the plan, the errors, the help text."""

import json

from conftest import TINY_DINO


def _config(tmp_path):
    cfg = tmp_path / "radadapt.toml"
    dino = "\n".join(f"{k} = {v}" for k, v in TINY_DINO.items())
    cfg.write_text(f"[train]\nnum_workers = 0\n\n[train.dino]\n{dino}\n")
    return cfg


def test_dry_run_prints_the_plan_as_json(cli, train_store, tiny_weights, tmp_path):
    res = cli("train", "--model", "rad-dino", "--store", train_store, "--weights", tiny_weights, "--out",
              tmp_path / "run", "--max-steps", "50", "--batch-size", "4", "--accum", "2", "--dry-run",
              "--config", _config(tmp_path), "--json")
    assert res.exit_code == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["steps"] == {**plan["steps"], "planned": 50, "rule": "--max-steps", "images_seen": 400}
    assert plan["batch"]["global"] == 8 and not (tmp_path / "run").exists()
    text = cli("train", "--store", train_store, "--weights", tiny_weights, "--dry-run", "--config",
               _config(tmp_path))
    assert text.exit_code == 0 and "plan (nothing was written)" in text.stdout and "memory:" in text.stdout


def test_mi2_gives_a_clear_error_until_its_objective_exists(cli, train_store, tmp_path):
    from radadapt.train.objectives import _OBJECTIVES

    import importlib.util

    if importlib.util.find_spec(_OBJECTIVES["mi2"]) is not None:  # issue 6 has landed: nothing to check here
        return
    res = cli("train", "--model", "mi2", "--store", train_store, "--weights", tmp_path, "--out", tmp_path / "r")
    assert res.exit_code == 2
    assert res.stderr.startswith("error[train.objective_unavailable]")


def test_usage_errors_are_one_line(cli, train_store, tiny_weights, tmp_path):
    res = cli("train", "--resume", tmp_path / "run", "--max-steps", "3")
    assert res.exit_code == 2 and "error[train.resume_options]" in res.stderr
    res = cli("train", "--resume", tmp_path)
    assert res.exit_code == 2 and "error[train.not_a_run]" in res.stderr
    res = cli("train", "--weights", tiny_weights, "--out", tmp_path / "r")
    assert res.exit_code == 2 and "error[train.missing_option]" in res.stderr
    res = cli("train", "--store", train_store, "--weights", tiny_weights, "--out", tmp_path / "r",
              "--time-budget", "6 hours")
    assert res.exit_code == 2 and "error[train.bad_duration]" in res.stderr
    res = cli("train", "--store", train_store, "--weights", tiny_weights, "--out", tmp_path / "r",
              "--precision", "fp8", "--dry-run")
    assert res.exit_code == 2 and "error[train.bad_option]" in res.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "run.json").write_text("{}")
    res = cli("train", "--store", train_store, "--weights", tiny_weights, "--out", tmp_path / "busy")
    assert res.exit_code == 2 and "error[train.run_exists]" in res.stderr and "--resume" in res.stderr
    assert "Traceback" not in res.stderr


def test_help_has_examples(cli):
    res = cli("train", "--help")
    assert res.exit_code == 0
    for flag in ("--time-budget", "--subset", "--resume", "--dry-run", "--grad-checkpointing", "torchrun"):
        assert flag in res.stdout
