"""Kill a training child process with SIGKILL once it has written a checkpoint (the resume tests' shared step)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_after_checkpoint(code: str, run_dir: Path, every: int, timeout_s: float = 240) -> int:
    """Run ``python -c code`` (a training run into ``run_dir``), SIGKILL it as soon as checkpoints/latest.json
    reaches step ``every``, check it really died of the signal, and return the checkpointed step."""
    env = {**os.environ, "RADADAPT_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run_dir / "checkpoints" / "latest.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        if latest.is_file() and json.loads(latest.read_text())["step"] >= every:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    return json.loads(latest.read_text())["step"]
