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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: tiny models are latency-bound and CI cores are shared (a 2-thread pool on a busy
    2-core machine made small ops tens of times slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
