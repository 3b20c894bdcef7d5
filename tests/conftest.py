"""Shared fixtures. Tests run offline: hub access is forced off for every test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RADADAPT_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Every test runs offline: a connection to anything but this machine fails loudly (the DDP tests talk to
    themselves over loopback)."""
    import ipaddress
    import socket

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def _check(address):
        if isinstance(address, tuple) and address:
            host = address[0]
            try:
                if ipaddress.ip_address(host).is_loopback:
                    return
            except ValueError:
                if host == "localhost":
                    return
            raise AssertionError(f"a test tried to reach the network: {address!r}")

    def connect(self, address):
        _check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture()
def site_key(tmp_path):
    """A fresh site key file (mode 0600) and the loaded key."""
    from radadapt.sitekey import create_key, load_key

    path = create_key(tmp_path / "site" / "site.key")
    return path, load_key(path)


@pytest.fixture()
def cli():
    """Invoke the real CLI in-process; returns a function(args) -> click Result (stdout and stderr separate)."""
    from typer.testing import CliRunner

    from radadapt.cli import app

    runner = CliRunner()

    def invoke(*args: str, **kw):
        return runner.invoke(app, [str(a) for a in args], **kw)

    return invoke


@pytest.fixture(scope="session")
def mi2_tiny_dir(tmp_path_factory):
    """A tiny random MI2 in the released layout (``radadapt.models.mi2.write_tiny``), written once per
    session. Treat it as read-only: copy it (shutil.copytree) before changing anything in it."""
    import torch

    from radadapt.models import mi2

    out = tmp_path_factory.mktemp("mi2_tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and robust on a busy CPU
    try:
        mi2.write_tiny(out, seed=0)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def rad_dino_tiny_dir(tmp_path_factory):
    """A tiny random RAD-DINO with every file of the real layout (``radadapt.models.rad_dino.write_tiny``): config.json,
    model.safetensors, preprocessor_config.json, backbone_compatible.safetensors, dino_head.safetensors. Written
    once per session; treat it as read-only (copy it with shutil.copytree before changing anything)."""
    from radadapt.models import rad_dino

    out = tmp_path_factory.mktemp("rad_dino_tiny") / "model"
    rad_dino.write_tiny(out, seed=0)
    return out


DEMO_TEST_KEY = bytes(range(32))  # fixed, so stores made in tests are reproducible; never a real site key


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory):
    """The synthetic hospital (``radadapt.demo.archive.generate_archive(n=60, seed=0, size=128)``): a folder with
    archive/, reports.csv, masks/, ground_truth.jsonl, phi.json ... (docs/architecture.md section 1). Written once
    per session; treat it as read-only."""
    from radadapt.demo.archive import generate_archive

    out = tmp_path_factory.mktemp("demo_archive") / "demo"
    generate_archive(out, n=60, seed=0, size=128)
    return out


@pytest.fixture(scope="session")
def demo_store(demo_archive, tmp_path_factory):
    """``demo_archive`` ingested into a complete store (resolution 112, masks included, one worker) with a fixed
    test key. Returns the store path; the key file is ``<store>/../site/site.key`` and the private audit is in
    ``<store>/../site/private/``. Written once per session; treat it as read-only."""
    from radadapt import atomic
    from radadapt.config import IngestSection
    from radadapt.ingest.pipeline import IngestRequest, run_ingest

    root = tmp_path_factory.mktemp("demo_store")
    key_file = root / "site" / "site.key"
    atomic.write_text(key_file, DEMO_TEST_KEY.hex() + "\n", perms=0o600)
    store = root / "store"
    run_ingest(IngestRequest(archive=demo_archive / "archive", reports=demo_archive / "reports.csv", store=store,
                             key_file=key_file, cfg=IngestSection(resolution=112), workers=1,
                             masks=demo_archive / "masks"))
    return store


@pytest.fixture(scope="session")
def demo_store_labelled(demo_store, tmp_path_factory):
    """A copy of ``demo_store`` labelled by ``radadapt labels`` (STORE/labels.csv and labels.json), for the MI2/UniCL
    training tests. Written once per session; treat it as read-only."""
    import shutil

    from radadapt.labels.extract import label_store

    out = tmp_path_factory.mktemp("demo_store_labelled") / "store"
    shutil.copytree(demo_store, out)
    label_store(out)
    return out
