"""`radadapt models tiny | pull | info`: tiny test models, the one explicit download, and what a directory holds."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from radadapt.commands import JsonOpt, examples, setup_output

FamilyArg = Annotated[str, typer.Argument(help="Model family: rad-dino or mi2.", metavar="FAMILY")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Directory to write the model into.")]


def write_tiny(family: str, out: Path, *, seed: int = 0, force: bool = False) -> dict[str, Any]:
    """Write a tiny random model of ``family`` in its real file formats; returns {family, out, files}."""
    from radadapt.errors import ModelError
    from radadapt.models import registry

    fam = registry.normalise_family(family)
    module = registry.family_module(fam)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ModelError("models.out_exists", f"{out} exists and is not empty", hint="choose a new directory or --force")
    kwargs = {"overwrite": True} if "overwrite" in inspect.signature(module.write_tiny).parameters else {}
    files = module.write_tiny(out, seed=seed, **kwargs)
    return {"family": fam, "out": str(out), "seed": seed, "files": dict(files or {})}


def pull_model(family: str, out: Path, *, revision: str | None = None) -> dict[str, Any]:
    """Download a family's released files from the hub (the only network call in radadapt)."""
    from radadapt.errors import ModelError
    from radadapt.models import hub, registry

    fam = registry.normalise_family(family)
    module = registry.family_module(fam)
    record = hub.pull_family(module, out, revision=revision)
    if not module.is_model_dir(out):
        raise ModelError("models.unknown_format", f"the files pulled into {out} do not form a {fam} model directory")
    return {"out": str(out), **record}


def register(app: typer.Typer) -> None:
    models = typer.Typer(
        help="Model files: tiny test models, pinned downloads (`pull`, the only network access), `info` for IT.",
        no_args_is_help=True,
        rich_markup_mode="markdown",
    )
    app.add_typer(models, name="models")

    @models.command(
        "tiny",
        epilog=examples("radadapt models tiny rad-dino --out /tmp/tiny-rad-dino",
                        "radadapt models tiny mi2 --out /tmp/tiny-mi2 --seed 1"),
    )
    def tiny_cmd(
        family: FamilyArg,
        out: OutOpt,
        seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bytes).")] = 0,
        force: Annotated[bool, typer.Option("--force", help="Replace a non-empty output directory.")] = False,
        json_output: JsonOpt = False,
    ) -> None:
        """Write a tiny random model with the real architecture and file formats (for tests and the CPU demo)."""
        from radadapt import console

        setup_output(json_output)
        result = write_tiny(family, out, seed=seed, force=force)
        lines = [f"tiny {result['family']} model written to {out} ({len(result['files'])} files)",
                 f"next: radadapt models info {out}"]
        console.emit(result, text="\n".join(lines))

    @models.command(
        "pull",
        epilog=examples("radadapt models pull rad-dino --revision <commit-sha> --out /models/rad-dino",
                        "radadapt models pull mi2 --out /models/mi2"),
    )
    def pull_cmd(
        family: FamilyArg,
        out: OutOpt,
        revision: Annotated[
            str | None, typer.Option("--revision", help="Commit sha (pinned), branch or tag. Default: the family's.")
        ] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Download a released model from the Hugging Face hub, pinned to a commit, with sha256 of every file.

        This is radadapt's only network access. The resolved commit and every file's sha256 go into
        `OUT/pull.json`; copy OUT to an offline machine and use it there. Honours HF_ENDPOINT, HTTPS_PROXY
        and HF_TOKEN; fails clearly when HF_HUB_OFFLINE is set.
        """
        from radadapt import console

        setup_output(json_output)
        result = pull_model(family, out, revision=revision)
        lines = [f"pulled {len(result['files'])} files from {result['repo']} at commit {result['commit']} into {out}",
                 f"next: radadapt models info {out} --verify"]
        if result.get("skipped_optional"):
            lines.insert(1, "not in the repository (optional): " + ", ".join(result["skipped_optional"]))
        console.emit(result, text="\n".join(lines))

    @models.command(
        "info",
        epilog=examples("radadapt models info /models/rad-dino", "radadapt models info /runs/site-v1 --verify --json"),
    )
    def info_cmd(
        path: Annotated[Path, typer.Argument(help="A model, run or export directory.")],
        verify: Annotated[
            bool, typer.Option("--verify", help="Also load every layout strictly and compare them (slower).")
        ] = False,
        json_output: JsonOpt = False,
    ) -> None:
        """Show a model directory: family, layouts, architecture, parameters, preprocessing, files with sha256."""
        from radadapt import console
        from radadapt.models import registry

        setup_output(json_output)
        info = registry.describe(path, verify=verify)
        rows = [(f["name"], f"{f['bytes']:,}", f["sha256"]) for f in info.get("files", [])]
        table = console.make_table(f"{info['family']} model: {info['path']}", ["file", "bytes", "sha256"], rows)
        console.emit(info, table=table, text=_summary(info))


_SUMMARY_KEYS = ("layouts", "architecture", "backbone_parameters", "parameters", "head", "preprocessing",
                 "pulled_from", "verify")


def _fmt(value: Any) -> str:
    """Any family's describe() values as one readable line (numbers with separators, dicts as k=v)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v) if not isinstance(v, dict) else '{' + _fmt(v) + '}'}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]" if not all(isinstance(v, str) for v in value) \
            else ", ".join(value)
    return str(value)


def _summary(info: dict[str, Any]) -> str:
    return "\n".join(f"{key.replace('_', ' ')}: {_fmt(info[key])}" for key in _SUMMARY_KEYS if key in info)
