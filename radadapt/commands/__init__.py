"""CLI command modules: one per command or group, each exposing ``register(app)``.

Each command parses its options, calls one library function from its stage package and prints through
``radadapt.console``. Heavy libraries (torch, transformers, timm, pydicom) are imported inside the command
functions so ``radadapt --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, help="Worker processes (default: all cores).")
]


class DefaultCommandGroup(TyperGroup):
    """A group that runs its default sub-command when the first argument is not a sub-command name.

    Lets ``radadapt labels STORE`` and ``radadapt labels extract CSV`` (or ``radadapt benchmark --store ...`` and
    ``radadapt benchmark scaling ...``) live side by side. The default is the first registered command.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            default = next(iter(self.commands), None)
            if default is not None:
                args = [default, *args]
        return super().parse_args(ctx, args)


def examples(*lines: str) -> str:
    """Format an 'Examples' epilog for --help (markdown mode keeps each line)."""
    body = "\n\n".join(f"`{line}`" for line in lines)
    return f"**Examples**\n\n{body}"


def setup_output(json_output: bool) -> None:
    from radadapt import console

    console.set_mode(json_output=json_output)


def jsonable(obj: Any) -> Any:
    """Pydantic models and paths to plain JSON types."""
    from pathlib import Path

    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj
