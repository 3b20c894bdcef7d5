"""``provenance.json``: what an export holds and where it came from, and ``radadapt export verify``.

The manifest lists every file of the export (POSIX path relative to the export root) with its sha256 and size,
plus what the model is (family, radadapt version, base checkpoint and its hashes, the resolved training config,
the store id, the encoder fingerprint, the identifier scan's outcome). It never holds a path of the site (run,
store, base model or key folder) or a pseudonymous patient key. ``verify_export`` re-hashes every listed file and
reports missing, modified and extra files; provenance.json itself is the one file not listed (it cannot hash
itself): record its sha256 (printed by ``radadapt export``) out of band to detect a rewritten manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from radadapt.errors import DataError

PROVENANCE = "provenance.json"
EXPORT_FORMAT = "radadapt-export"
EXPORT_VERSION = 1


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (symbolic links included as entries, never followed), sorted."""
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or p.is_file():
            yield p


def file_table(root: Path, progress: Any = None, task: Any = None) -> dict[str, dict[str, Any]]:
    """{relative POSIX path: {sha256, bytes}} of every file but provenance.json."""
    table: dict[str, dict[str, Any]] = {}
    for p in walk_files(root):
        rel = p.relative_to(root).as_posix()
        if rel == PROVENANCE:
            continue
        if p.is_symlink():  # an export is self-contained; a link could point anywhere on the site
            raise DataError("export.symlink", f"the export would contain a symbolic link ({rel})")
        table[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        if progress is not None:
            progress.advance(task)
    return table


def read_provenance(export_dir: Path) -> dict[str, Any]:
    path = Path(export_dir) / PROVENANCE
    if not path.is_file():
        raise DataError(
            "export.not_an_export",
            f"{export_dir} is not a radadapt export (no {PROVENANCE})",
            hint="export a run with `radadapt export RUN --out DIR`",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DataError("export.bad_provenance", f"{PROVENANCE} in {export_dir} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT or not isinstance(data.get("files"), dict):
        raise DataError("export.bad_provenance", f"{PROVENANCE} in {export_dir} is not a radadapt export manifest")
    if int(data.get("version", 0)) > EXPORT_VERSION:
        raise DataError("export.too_new", f"the export was written by a newer radadapt (format {data['version']})",
                        hint="upgrade radadapt to verify it")
    return data


def verify_export(export_dir: str | Path) -> dict[str, Any]:
    """Re-check every file listed in provenance.json: {ok, family, checked, missing, modified, extra, ...}."""
    from radadapt import console

    root = Path(export_dir)
    if not root.is_dir():
        raise DataError("export.not_an_export", f"{root} is not a directory")
    prov = read_provenance(root)
    listed: dict[str, dict] = prov["files"]
    missing, modified, checked = [], [], 0
    present = {p.relative_to(root).as_posix(): p for p in walk_files(root)}
    with console.progress(transient=True) as bar:
        task = bar.add_task("verifying", total=len(listed))
        for rel, rec in sorted(listed.items()):
            p = present.get(rel)
            if p is None:
                missing.append(rel)
            elif p.is_symlink() or p.stat().st_size != rec.get("bytes") or sha256_file(p) != rec.get("sha256"):
                modified.append(rel)
            else:
                checked += 1
            bar.advance(task)
    extra = sorted(rel for rel in present if rel not in listed and rel != PROVENANCE)
    return {
        "export": str(root), "ok": not (missing or modified or extra), "family": prov.get("family"),
        "radadapt_version": prov.get("radadapt_version"), "files": len(listed), "checked": checked,
        "missing": missing, "modified": modified, "extra": extra,
        "provenance_sha256": sha256_file(root / PROVENANCE),
    }
