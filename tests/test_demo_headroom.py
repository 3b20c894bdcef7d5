"""tools/demo_headroom.py's probe (the benchmark's linear probe with the demo's settings): a known answer on
planted features; the tool itself is a diagnostic script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from radadapt.bench.probes import LabelTargets
from radadapt.config import load_config

TOOL = Path(__file__).resolve().parents[1] / "tools" / "demo_headroom.py"


def _tool():
    spec = importlib.util.spec_from_file_location("demo_headroom", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_finds_a_planted_label_ignores_noise_and_skips_rare_labels():
    rng = np.random.default_rng(0)
    feats, targets = {}, {}
    for split, n in (("probe_train", 300), ("val", 120), ("test", 200)):
        y = np.stack([rng.random(n) < 0.4, rng.random(n) < 0.4, np.arange(n) < 3], axis=1).astype(float)
        x = rng.normal(size=(n, 8))
        x[:, 0] += 2.5 * y[:, 0]  # label 0 is planted in feature 0; label 1 is in no feature
        mask = np.ones_like(y, dtype=bool)
        mask[: n // 10, 0] = False  # unknown entries are left out, not read as negatives
        y[: n // 10, 0] = 1.0
        feats[split], targets[split] = x, LabelTargets(y=y, mask=mask)
    demo_cfg = load_config(Path(__file__).resolve().parents[1] / "radadapt" / "templates" / "demo.toml").benchmark
    scores = _tool().probe(feats, targets, ["planted", "noise", "rare"], demo_cfg)
    assert scores["planted"] > 0.9
    assert 0.35 < scores["noise"] < 0.65
    assert "rare" not in scores  # 3 test positives: below the benchmark's min_positives, so not evaluated
