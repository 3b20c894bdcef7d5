"""CLI for the models stage (being built; see docs/architecture.md)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:  # filled in by the models stage
    pass
