import os
import subprocess
import sys
import time

from radadapt.errors import DataError


def test_help_lists_every_command_and_starts_fast():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "radadapt.cli", "--help"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    assert "init" in out.stdout
    # The CLI must not import torch & friends at start-up (checked directly, not by timing).
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, radadapt.cli; print(sorted(m for m in ('torch','transformers','timm','pydicom','sklearn','matplotlib') if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "[]", probe.stdout
    assert elapsed < 30  # sanity bound only; speed is measured in benchmarks/, not asserted here


def test_expected_error_is_one_line_with_code(cli, monkeypatch):
    import radadapt.commands.init as init_mod

    def boom(*_a, **_k):
        raise DataError("demo.test_error", "something clear went wrong", hint="do this next")

    monkeypatch.setattr(init_mod, "init_site", boom)
    res = cli("init", "somewhere")
    assert res.exit_code == 3
    assert "error[demo.test_error]: something clear went wrong" in res.stderr
    assert "hint: do this next" in res.stderr
    assert "Traceback" not in res.stderr


def test_internal_error_hides_message_unless_debug(cli, monkeypatch):
    import radadapt.commands.init as init_mod

    def boom(*_a, **_k):
        raise ValueError("/archive/DOE^JOHN/1.dcm is broken")  # messages can carry PHI paths

    monkeypatch.setattr(init_mod, "init_site", boom)
    res = cli("init", "somewhere")
    assert res.exit_code == 70
    assert "DOE^JOHN" not in res.stderr and "ValueError" in res.stderr
    res = cli("init", "somewhere", "--debug")
    assert "Traceback" in res.stderr


def test_init_creates_private_key_and_config(cli, tmp_path):
    site = tmp_path / "site"
    res = cli("init", site, "--json")
    assert res.exit_code == 0, res.output
    key = site / "site.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert oct((site / "private").stat().st_mode & 0o777) == "0o700"
    secret = key.read_text().strip()
    assert secret not in res.stdout and secret not in res.stderr
    # A second init keeps the key (linkage) unless --force.
    res2 = cli("init", site)
    assert res2.exit_code == 0 and key.read_text().strip() == secret


def test_os_errors_on_user_paths_are_one_line(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = cli("init", blocker / "sub")
    assert res.exit_code != 0
    assert res.stderr.startswith("error[io.")


def test_every_command_but_pull_runs_with_the_hub_offline(monkeypatch):
    from radadapt.cli import _offline_unless_pulling

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    _offline_unless_pulling(["--debug", "models", "pull", "rad-dino", "--out", "x"])
    assert "HF_HUB_OFFLINE" not in os.environ
    _offline_unless_pulling(["train", "--model", "mi2"])
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_the_suite_cannot_reach_the_network():
    import socket

    import pytest

    with socket.socket() as s, pytest.raises(AssertionError, match="network"):
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed
