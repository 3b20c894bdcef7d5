"""Fixtures for the benchmark tests: a small labelled store with planted signals and tiny models."""

from __future__ import annotations

import pytest

from tests.bench.storebuilder import build_store


@pytest.fixture(scope="session")
def bench_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "store"
    info = build_store(root, n_patients=60, seed=0)
    return root, info


@pytest.fixture(scope="session")
def tiny_rad_dino(tmp_path_factory):
    from radadapt.models import rad_dino

    out = tmp_path_factory.mktemp("models") / "rad_dino"
    rad_dino.write_tiny(out, seed=0)
    return out
