"""Model families by name, and detection of what a model directory holds.

A family is one module in ``radadapt/models`` exposing ``NAME``, ``is_model_dir(path) -> bool`` and
``load_encoder(path, device) -> Encoder``; adding one is one line in ``_FAMILY_MODULES``. Run directories
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
    return import_module(_FAMILY_MODULES[normalise_family(name)])


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
    for name in _FAMILY_MODULES:
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
