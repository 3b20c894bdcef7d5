"""Explicit model downloads: the ONLY place radadapt talks to the network, and only when the user runs
``radadapt models pull``.

``pull(repo, files, out_dir, revision=...)`` resolves the revision to a commit sha once (``HfApi.model_info``),
downloads every file at that commit with ``huggingface_hub.hf_hub_download`` into a staging folder, checks each
file's sha256 against the hub's LFS record (and against the family's own pins, e.g. MI2's ``HUB_SHA256``), moves it
into ``out_dir`` keeping its repo path, and finally writes ``pull.json``::

    {"repo", "revision" (as asked), "pinned" (bool), "commit" (resolved sha), "pulled_at", "family",
     "huggingface_hub", "files": {path: {"sha256", "bytes"}}, "skipped_optional": [...], "complete"}

The record is rewritten after every file (``complete: false`` until the end), so a rerun with the same commit
keeps the files already fetched whose sha256 still matches (resumable). Without a revision the
family's default (or the repo's default branch) is used, resolved and recorded, with a warning that the pull is
not pinned; no hash is ever invented. ``HF_HUB_OFFLINE=1`` or a failing network gives ``models.offline`` /
``models.hub_unreachable``. Everything else in radadapt reads local directories only.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from radadapt import atomic, console
from radadapt.errors import ModelError
from radadapt.models.encoder import sha256_file

PULL_RECORD = "pull.json"
_SHA = re.compile(r"^[0-9a-f]{40}$")


def _hub_error(exc: BaseException, repo: str, revision: str) -> ModelError:
    """Map huggingface_hub / network exceptions to one line (type names only: messages can carry URLs/tokens)."""
    from huggingface_hub import errors

    if isinstance(exc, errors.OfflineModeIsEnabled):
        return _offline()
    if isinstance(exc, errors.GatedRepoError):
        return ModelError("models.hub_gated", f"{repo} is gated: accept its terms on the hub and log in (hf auth login)")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return ModelError("models.hub_not_found", f"repository {repo} not found on the hub (or it is private)")
    if isinstance(exc, errors.RevisionNotFoundError):
        return ModelError("models.hub_bad_revision", f"revision '{revision}' not found in {repo}")
    if isinstance(exc, (errors.EntryNotFoundError, errors.RemoteEntryNotFoundError)):
        return ModelError("models.hub_missing_file", f"a required file is missing from {repo} at {revision}")
    return ModelError(
        "models.hub_unreachable",
        f"could not reach the hub for {repo} ({type(exc).__name__})",
        hint="check the network/proxy (HTTPS_PROXY), or pull on a connected machine and copy the directory",
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a hub call raises for a refused, failed or invalid request (hub errors are OSError/ValueError
    subclasses; the HTTP client's own errors depend on the huggingface_hub version). Bugs still surface."""
    from importlib import import_module

    errs: list[type[BaseException]] = [OSError, ValueError]
    for client in ("httpx2", "httpx", "requests"):
        try:
            errs.append(import_module(client).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errs)


def _offline() -> ModelError:
    return ModelError(
        "models.offline",
        "hub access is switched off (HF_HUB_OFFLINE is set)",
        hint="unset HF_HUB_OFFLINE for this command, or pull on a connected machine and copy the directory over",
    )


def _select(available: Sequence[str], patterns: Sequence[str], *, required: bool) -> list[str]:
    chosen: list[str] = []
    for pat in patterns:
        hits = [f for f in available if fnmatch.fnmatchcase(f, pat)]
        if not hits and required:
            raise ModelError("models.hub_missing_file", f"'{pat}' is not in the repository at this revision")
        chosen += [h for h in sorted(hits) if h not in chosen]
    return chosen


def _previous(out_dir: Path, repo: str, commit: str) -> dict[str, Any]:
    rec = out_dir / PULL_RECORD
    if not rec.is_file():
        return {}
    import json

    try:
        data = json.loads(rec.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data.get("files", {}) if data.get("repo") == repo and data.get("commit") == commit else {}


def pull(
    repo: str,
    files: Sequence[str],
    out_dir: str | Path,
    *,
    revision: str | None = None,
    optional: Sequence[str] = (),
    expected_sha256: Mapping[str, str] | None = None,
    family: str | None = None,
) -> dict[str, Any]:
    """Download ``files`` (names or fnmatch patterns, all required) and ``optional`` ones from ``repo`` at
    ``revision`` into ``out_dir``; returns the ``pull.json`` record."""
    import huggingface_hub
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise _offline()
    asked = revision or "main"
    if revision is None or not _SHA.match(revision):
        console.warn(
            f"revision '{asked}' is a moving reference, not a commit: the resolved commit is recorded in "
            f"{PULL_RECORD}; pass --revision <commit> to pin a reproducible pull"
        )
    try:
        info = huggingface_hub.HfApi().model_info(repo, revision=asked, files_metadata=True)
    except _network_errors() as exc:  # every hub/network failure becomes one clear line
        raise _hub_error(exc, repo, asked) from None
    commit = str(info.sha)
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    wanted = _select(list(siblings), files, required=True)
    extra = _select(list(siblings), optional, required=False)
    skipped = [p for p in optional if not any(fnmatch.fnmatchcase(f, p) for f in siblings)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".pull-staging"
    before = _previous(out, repo, commit)
    record: dict[str, Any] = {
        "repo": repo, "revision": asked, "pinned": bool(_SHA.match(asked)), "commit": commit, "family": family,
        "pulled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "huggingface_hub": huggingface_hub.__version__, "files": {}, "skipped_optional": skipped,
    }
    todo = wanted + extra
    with console.progress() as bar:
        task = bar.add_task(f"pull {repo}", total=len(todo))
        for name in todo:
            target = out / name
            if target.is_file() and before.get(name, {}).get("sha256") == sha256_file(target):
                record["files"][name] = before[name]
                bar.advance(task)
                continue
            bar.update(task, status=name)
            try:
                got = Path(huggingface_hub.hf_hub_download(repo, name, revision=commit, local_dir=staging))
            except _network_errors() as exc:
                raise _hub_error(exc, repo, commit) from None
            digest = sha256_file(got)
            lfs = getattr(siblings[name], "lfs", None)
            pins = [("the hub's LFS record", getattr(lfs, "sha256", None)),
                    ("radadapt's pinned hash", (expected_sha256 or {}).get(name))]
            for source, want in pins:
                if want and want != digest:
                    raise ModelError(
                        "models.hub_checksum",
                        f"{name}: sha256 {digest[:12]}... does not match {source} ({str(want)[:12]}...)",
                        hint="the download is corrupt or the file changed upstream; rerun, or pin --revision",
                    )
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(got, target)
            record["files"][name] = {"sha256": digest, "bytes": target.stat().st_size}
            atomic.write_json(out / PULL_RECORD, {**record, "complete": False})  # a rerun resumes from here
            bar.advance(task)
    shutil.rmtree(staging, ignore_errors=True)
    record["complete"] = True
    atomic.write_json(out / PULL_RECORD, record)
    return record


def pull_family(module: Any, out_dir: str | Path, *, revision: str | None = None) -> dict[str, Any]:
    """``pull`` with a family module's ``HUB_REPO`` / ``HUB_FILES`` / ``HUB_REVISION`` (and, when present,
    ``HUB_OPTIONAL_FILES`` and ``HUB_SHA256``)."""
    return pull(
        module.HUB_REPO,
        module.HUB_FILES,
        out_dir,
        revision=revision or getattr(module, "HUB_REVISION", None),
        optional=getattr(module, "HUB_OPTIONAL_FILES", ()),
        expected_sha256=getattr(module, "HUB_SHA256", None),
        family=module.NAME,
    )
