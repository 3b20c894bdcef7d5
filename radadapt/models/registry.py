"""Model families by name, and detection of what a model directory holds.

A family is one module in ``radadapt/models`` exposing ``NAME``, ``is_model_dir(path) -> bool``,
``load_encoder(path, device) -> Encoder``, ``write_tiny(out_dir, seed=0)`` and ``HUB_REPO`` / ``HUB_REVISION`` /
``HUB_FILES`` for ``models pull`` (optionally ``HUB_OPTIONAL_FILES``, ``HUB_SHA256`` and
``describe(path, verify=False) -> dict`` for ``models info``); adding one is one line in ``_FAMILY_MODULES``. A
family whose module is not installed is skipped by detection and reported as ``models.family_unavailable``. Run directories
(``run.json``) and export directories (``provenance.json``) resolve to the model directory inside them.
Detection never guesses: a directory that matches no family is a clear ``ModelError`` listing what was found.
"""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from types import ModuleType

from radadapt.errors import ModelError

_FAMILY_MODULES = {"rad_dino": "radadapt.models.rad_dino", "mi2": "radadapt.models.mi2"}
CLI_NAMES = {"rad-dino": "rad_dino", "rad_dino": "rad_dino", "mi2": "mi2"}


def family_names() -> list[str]:
    return list(_FAMILY_MODULES)


def normalise_family(name: str) -> str:
    try:
        return CLI_NAMES[name.lower()]
    except KeyError:
        raise ModelError("models.unknown_family", f"unknown model family '{name}' (known: rad-dino, mi2)") from None


def family_module(name: str) -> ModuleType:
    fam = normalise_family(name)
    module = _FAMILY_MODULES[fam]
    try:
        return import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a real missing dependency inside the family module: let it surface
            raise
        raise ModelError(
            "models.family_unavailable", f"model family '{fam}' is not available in this radadapt installation"
        ) from None


def available_families() -> list[str]:
    """Families whose module can be imported (a family arriving later is simply not listed)."""
    out = []
    for name in _FAMILY_MODULES:
        try:
            family_module(name)
        except ModelError:
            continue
        out.append(name)
    return out


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory -> its final/ model; an export -> its model root; anything else as is."""
    p = Path(path)
    if not p.exists():
        raise ModelError("models.not_found", f"model path not found: {p}")
    if (p / "run.json").is_file():
        final = p / "final"
        if not final.is_dir():
            raise ModelError(
                "models.run_unfinished",
                f"run {p} has no final model yet",
                hint=f"finish it with `radadapt train --resume {p}`",
            )
        return final
    return p


def detect_family(path: str | Path) -> str:
    p = resolve_model_dir(path)
    prov = p / "provenance.json"
    if prov.is_file():
        try:
            fam = json.loads(prov.read_text(encoding="utf-8")).get("family")
        except ValueError:
            fam = None
        if fam in _FAMILY_MODULES:
            return fam
    for name in available_families():
        if family_module(name).is_model_dir(p):
            return name
    found = sorted(x.name for x in p.iterdir())[:12] if p.is_dir() else [p.name]
    raise ModelError(
        "models.unknown_format",
        f"{p} is not a model radadapt knows (found: {', '.join(found) or 'nothing'})",
        hint="expected a RAD-DINO transformers/Meta directory, an MI2 release directory, a run or an export",
    )


def load_encoder(path: str | Path, device: str = "cpu"):
    """A frozen, eval-mode encoder (``radadapt.models.encoder.Encoder``) for any supported model path."""
    family = detect_family(path)
    return family_module(family).load_encoder(resolve_model_dir(path), device=device)


def describe(path: str | Path, *, verify: bool = False) -> dict:
    """The family's own ``describe`` (``models info``), else the family and every file with size and sha256."""
    from radadapt.models.encoder import sha256_file

    family = detect_family(path)
    p = resolve_model_dir(path)
    module = family_module(family)
    if hasattr(module, "describe"):
        return module.describe(p, verify=verify)
    files = [f for f in sorted(p.rglob("*")) if f.is_file() and not any(x.startswith(".") for x in f.relative_to(p).parts)]
    return {
        "family": family,
        "path": str(p),
        "files": [{"name": str(f.relative_to(p)), "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in files],
    }
