"""Every error code the package can print is documented in docs/troubleshooting.md (issue 8: "troubleshooting
every error code the tool can print").

Codes are found in the source, not by importing: every string constant shaped like ``<stage>.<what>`` that is
passed to a call (``DataError("store.no_labels", ...)``, ``_read_json(path, "report.bad_results")``) or bound
to a name later passed as a code (``code = "io.disk_full"``). File names that look alike (``labels.csv``) and
config table names are excluded by suffix and by an explicit list, so a new code cannot slip through unnoticed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("io", "config", "sitekey", "store", "models", "ingest", "labels", "train", "bench", "export", "report",
          "demo", "scaling")
CODE = re.compile(rf"^(?:{'|'.join(STAGES)})\.[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?$")
FILE_SUFFIXES = {"csv", "json", "jsonl", "txt", "key", "toml", "md", "html", "safetensors", "yaml", "yml", "pt",
                 "pth", "bin", "py", "png", "j2", "npy", "lock", "tmp", "log"}
# constants of the right shape that are not error codes (config tables, module paths); keep this list short
NOT_CODES = {"train.unicl", "train.dino", "bench.run", "models.rad_dino", "models.mi2", "report.html", "report.md",
             "labels.extract", "ingest.pipeline", "demo.pipeline", "train.run"}


def _constants(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _looks_like_code(text: str) -> bool:
    return bool(CODE.match(text)) and text.rsplit(".", 1)[-1] not in FILE_SUFFIXES and text not in NOT_CODES


def codes_in_package() -> dict[str, str]:
    """code -> first file (relative) that uses it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "radadapt").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            texts: list[str] = []
            if isinstance(node, ast.Call):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    texts += _constants(arg) if not isinstance(arg, (ast.JoinedStr, ast.Lambda)) else []
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                texts += _constants(node.value)
            elif isinstance(node, ast.Return) and node.value is not None:
                texts += _constants(node.value)
            for text in texts:
                if _looks_like_code(text):
                    found.setdefault(text, str(path.relative_to(ROOT)))
    return found


def documented_codes() -> set[str]:
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    return set(re.findall(r"`([a-z]+\.[a-z0-9_.]+)`", text))


def test_the_collector_finds_codes_of_every_kind():
    codes = codes_in_package()
    assert "store.no_labels" in codes  # a direct DataError("...") call
    assert "io.disk_full" in codes  # a code in a mapping, chosen at run time (cli._os_error)
    assert len({c.split(".")[0] for c in codes}) >= 10, sorted(codes)


def test_every_code_is_in_troubleshooting():
    missing = {c: f for c, f in codes_in_package().items() if c not in documented_codes()}
    assert not missing, "undocumented error codes (add them to docs/troubleshooting.md):\n" + "\n".join(
        f"  {c}  ({f})" for c, f in sorted(missing.items()))


def test_troubleshooting_page_is_assembled_from_the_stage_docs():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "tools" / "troubleshooting.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
