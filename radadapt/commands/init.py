"""`radadapt init SITE_DIR`: a site directory with a config, a secret key and a private folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from radadapt.commands import JsonOpt, examples, setup_output


def init_site(site_dir: Path, *, force: bool = False) -> dict:
    """Create SITE_DIR/radadapt.toml, SITE_DIR/site.key (0600) and SITE_DIR/private/ (0700)."""
    from radadapt import atomic
    from radadapt.config import CONFIG_FILENAME, template_text
    from radadapt.sitekey import create_key, load_key

    site_dir.mkdir(parents=True, exist_ok=True)
    config = site_dir / CONFIG_FILENAME
    wrote_config = False
    if force or not config.exists():
        atomic.write_text(config, template_text())
        wrote_config = True
    key = site_dir / "site.key"
    created_key = False
    if not key.exists():
        create_key(key)
        created_key = True
    elif force:
        create_key(key, overwrite=True)
        created_key = True
    private = site_dir / "private"
    private.mkdir(exist_ok=True)
    os.chmod(private, 0o700)
    return {
        "site_dir": str(site_dir),
        "config": str(config),
        "config_written": wrote_config,
        "key_file": str(key),
        "key_created": created_key,
        "key_fingerprint": load_key(key).fingerprint(),
        "private_dir": str(private),
    }


def register(app: typer.Typer) -> None:
    @app.command(
        "init",
        epilog=examples("radadapt init /data/radadapt-site", "radadapt ingest /pacs/export --reports reports.csv "
                        "--out /data/store --site-key /data/radadapt-site/site.key"),
    )
    def init_cmd(
        site_dir: Annotated[Path, typer.Argument(help="Directory for the site config, key and private files.")],
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite the config and REPLACE the key (breaks linkage).")
        ] = False,
        json_output: JsonOpt = False,
    ) -> None:
        """Create a site directory: `radadapt.toml`, a secret `site.key` (mode 0600) and `private/`.

        The key makes patient pseudonyms; it is never printed. Keep it outside the store and back it up:
        the same key must be used for every ingest that should link to earlier ones.
        """
        from radadapt import console

        setup_output(json_output)
        result = init_site(site_dir, force=force)
        lines = [
            f"site directory: {result['site_dir']}",
            f"config:         {result['config']}" + ("" if result["config_written"] else " (kept existing)"),
            f"site key:       {result['key_file']}" + (" (new, mode 0600)" if result["key_created"] else " (kept existing)"),
            f"key fingerprint: {result['key_fingerprint']} (identifies the key; not secret)",
            "next: radadapt ingest ARCHIVE --reports REPORTS.csv --out STORE --site-key " + result["key_file"],
        ]
        console.emit(result, text="\n".join(lines))
