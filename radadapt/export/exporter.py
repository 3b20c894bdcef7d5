"""``radadapt export RUN --out DIR``: a finished run becomes a folder other tools load, with a card and provenance.

Steps, all inside a hidden temporary sibling of DIR that is renamed into place only at the very end (so an
error, a refusal or a crash leaves nothing under DIR): check the run and the output; find the site's identifier
audit (before any heavy work); write the family layout from the strictly loaded final model and read it back
(``layouts``); render the model card; scan every file against the audit (``phi_scan``); write provenance.json;
verify every hash; rename. What is never exported: train_patients.txt (pseudonymous keys), metrics.jsonl,
checkpoints, run.json itself, and any path of the site (run, store, base model, key or private folder): the scan
refuses an export in which one appears.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radadapt import __version__, atomic, console
from radadapt.errors import DataError, PrivacyError, UsageError
from radadapt.export import card as card_mod
from radadapt.export import phi_scan, provenance, summary

CARD = "MODEL_CARD.md"
FAMILY_NAMES = {"rad_dino": "RAD-DINO", "mi2": "MedImageInsight (MI2)"}
OBJECTIVES = {"rad_dino": "DINOv2 self-distillation (DINO + iBOT + KoLeo), EMA teacher exported",
              "mi2": "UniCL contrastive image-text pretraining (reports and label prompts)"}


@dataclass
class ExportRequest:
    run: Path
    out: Path
    results: Path | None = None
    site_key: Path | None = None
    private_dir: Path | None = None
    no_phi_scan: bool = False
    store: Path | None = None  # where the run's store is now, if it moved (only aggregates are read)
    config: Path | None = None
    force: bool = False


def read_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise UsageError("export.not_a_run", f"{run_dir} is not a training run (no run.json)",
                         hint="export the folder `radadapt train --out RUN` wrote")
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DataError("export.bad_run", f"run.json in {run_dir} is damaged") from None
    if not isinstance(run, dict) or run.get("format") != "radadapt-run" or run.get("family") not in FAMILY_NAMES \
            or not isinstance(run.get("store"), dict) or not run["store"].get("store_id"):
        raise DataError("export.bad_run", f"run.json in {run_dir} is not a radadapt run of a known family")
    if run.get("status") != "completed" or not (run_dir / "final").is_dir():
        raise UsageError(
            "export.run_incomplete", f"the run {run_dir.name} has not completed (status: {run.get('status')})",
            hint=f"finish it with `radadapt train --resume {run_dir}`; only a completed run's final model is exported",
        )
    return run


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError("export.out_exists", f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError("export.out_exists", f"{out} exists and is not empty",
                             hint="choose a new --out, or --force to replace an earlier export there")
        if not (out / provenance.PROVENANCE).is_file():
            raise UsageError("export.out_exists", f"{out} is not an earlier export; --force only replaces exports",
                             hint="choose a new --out")


def _key_file(req: ExportRequest, cfg) -> Path | None:  # noqa: ANN001 - SiteConfig
    if req.site_key is not None:
        return req.site_key
    if cfg.source is not None:  # a site config was found: its key, as `radadapt init` laid it out
        candidate = cfg.resolve(cfg.site.key_file)
        return candidate if candidate.is_file() else None
    return None


def _audit(req: ExportRequest, cfg, run: dict) -> phi_scan.IdentifierAudit | None:  # noqa: ANN001
    if req.no_phi_scan:
        console.warn("--no-phi-scan: the export will NOT be checked for patient identifiers; review it before sharing")
        return None
    key = _key_file(req, cfg)
    if key is None:
        raise PrivacyError(
            "export.no_audit",
            "no site key was given, so the export cannot be scanned for identifiers",
            hint="pass --site-key KEYFILE (and --private-dir if the audit is not in private/ beside it); "
                 "--no-phi-scan skips the scan, at your own risk",
        )
    store = run.get("store") or {}
    private = req.private_dir
    if private is None and req.site_key is None and cfg.source is not None:
        private = cfg.resolve(cfg.site.private_dir)
    return phi_scan.locate_audit(store.get("store_id", ""), key, private, store.get("key_fingerprint"))


def _first_last_loss(run_dir: Path) -> tuple[float | None, float | None]:
    path = run_dir / "metrics.jsonl"
    first = last = None
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    loss = json.loads(line).get("loss")
                except ValueError:
                    continue
                if isinstance(loss, (int, float)):
                    first = loss if first is None else first
                    last = loss
    return first, last


def _earlier_export(base_path: Path) -> dict | None:
    """provenance.json of an earlier radadapt export the run started from (the export or its meta/ or mi2/)."""
    for folder in (base_path, base_path.parent):
        try:
            prov = provenance.read_provenance(folder)
        except DataError:
            continue
        return prov
    return None


def _base(run: dict, family: str, layout: dict) -> dict[str, Any]:
    b = dict(run.get("base_model") or {})
    tiny = bool(layout.get("tiny"))
    earlier = _earlier_export(Path(b["path"])) if b.get("path") else None
    if earlier is not None:  # training continued from an export: inherit what it knew about its own base
        up = earlier.get("base_model") or {}
        tiny = bool(up.get("tiny"))
        for k in ("repo", "revision", "commit"):
            b.setdefault(k, None)
            b[k] = b[k] or up.get(k)
    elif family == "rad_dino" and b.get("path"):
        try:  # the tiny marker lives in the base's own config.json (when that folder is still there)
            cfg = json.loads((Path(b["path"]) / "config.json").read_text(encoding="utf-8"))
            tiny = bool((cfg.get("radadapt") or {}).get("tiny"))
        except (OSError, ValueError, AttributeError):
            pass
    if earlier is not None:
        origin = b.get("repo") or ("radadapt's tiny random model" if tiny else "local weights")
        label = f"an earlier radadapt export of this site (itself from {origin})"
    elif b.get("repo"):
        label = str(b["repo"])
    elif tiny:
        label = f"the tiny random {FAMILY_NAMES[family]} of radadapt (`radadapt models tiny`)"
    else:
        label = "local weights (not pulled from a hub by radadapt)"
    files = sorted((b.get("files") or {}).items())
    return {"label": label, "repo": b.get("repo"), "revision": b.get("revision"), "commit": b.get("commit"),
            "files": files, "tiny": tiny, "earlier_export": earlier is not None}


def _base_hashes(run: dict) -> set[str]:
    """sha256 of the base model's files (run.json). An exported file with one of these hashes is byte for byte a
    file training started from (the tokenizer, the MI2 config.yaml): nothing of this site's data reached it."""
    return {str(v) for v in ((run.get("base_model") or {}).get("files") or {}).values()}


def export_run(req: ExportRequest) -> dict[str, Any]:
    """Export a completed run; returns the result ``radadapt export --json`` prints."""
    from radadapt.config import load_config

    cfg = load_config(req.config)
    run_dir, out = Path(req.run), Path(req.out)
    run = read_run(run_dir)
    family = run["family"]
    _check_out(out, req.force)
    audit = _audit(req, cfg, run)  # fail before any heavy work
    results = summary.load_results(req.results) if req.results is not None else None
    if results is not None:  # results of another model: refuse before writing gigabytes
        from radadapt.export.layouts import encoder_fingerprint

        summary.benchmark(results, encoder_fingerprint(family, run_dir / "final"), run["store"].get("store_id"))
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        with console.progress() as bar:
            result = _build(req, cfg, run, run_dir, staging, audit, results, bar)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result["export"] = str(out)
    return result


def _build(req: ExportRequest, cfg, run: dict, run_dir: Path, staging: Path,  # noqa: ANN001 - config, audit
           audit, results, bar) -> dict:  # noqa: ANN001
    from radadapt.export import layouts

    family = run["family"]
    exp = cfg.export
    task = bar.add_task(f"exporting {FAMILY_NAMES[family]}", total=None)
    final = run_dir / "final"
    steps = run.get("steps") or {}
    if family == "rad_dino":
        lay = layouts.write_rad_dino(final, staging, {"steps": steps.get("done"), "radadapt_version": __version__})
    else:
        lay = layouts.write_mi2(final, staging)
    bar.update(task, status="model written and read back")
    store_path = req.store or (Path(run["store"]["path"]) if (run.get("store") or {}).get("path") else None)
    data = summary.training_data(run, run_dir, store_path, min_cell=exp.min_cell_count,
                                 manufacturers=exp.card_manufacturers, progress=bar)
    bench = summary.benchmark(results, lay["run_fingerprint"], run["store"].get("store_id")) if results else None
    base = _base(run, family, lay)
    layout_info = run.get("layout") or {}
    loss_first, loss_last = _first_last_loss(run_dir)
    context = {
        "family": family, "family_name": FAMILY_NAMES[family], "site": cfg.site.name,
        "radadapt_version": __version__, "base": base, "architecture": lay["architecture"],
        "objective": OBJECTIVES[family], "fingerprint": lay["fingerprint"],
        "same_as_run": lay["fingerprint"] == lay["run_fingerprint"], "layout": lay["layout"],
        "run": {"steps_done": steps.get("done"), "steps_planned": steps.get("planned"),
                "time_budget": steps.get("time_budget"), "global_batch": layout_info.get("global_batch"),
                "world_size": layout_info.get("world_size"), "batch_size": layout_info.get("batch_size"),
                "accum": layout_info.get("accum"), "precision": run.get("precision"),
                "device_type": str(run.get("device") or "unknown").split(":")[0],
                "loss_first": loss_first, "loss_last": loss_last},
        "settings": sorted((run.get("settings") or {}).items()), "data": data, "bench": bench,
        "licence": summary.base_licence(family, base, base["tiny"], exp.licence_note),
        "phi_scan": {"status": "passed" if audit is not None else "skipped",
                     "identifiers": len(audit) if audit is not None else 0},
        "mi2": {k: lay.get(k) for k in ("image_size", "is_huge", "width", "timm_kwargs")},
    }
    card_text, card_computed = card_mod.render_card(context, exp.phi_max_phrase)
    atomic.write_text(staging / CARD, card_text)
    bar.update(task, status="model card written")

    prov = {
        "format": provenance.EXPORT_FORMAT, "version": provenance.EXPORT_VERSION, "radadapt_version": __version__,
        "family": family, "site": cfg.site.name,
        "base_model": {k: base[k] for k in ("repo", "revision", "commit", "tiny", "earlier_export")}
        | {"files": dict(base["files"])},
        "run": {"radadapt_version": run.get("radadapt_version"), "status": run.get("status"), "steps": steps,
                "subset": run.get("subset"), "data": run.get("data"), "layout": layout_info,
                "precision": run.get("precision"), "final_files": (run.get("final") or {}).get("files")},
        "store": {"store_id": run["store"].get("store_id"), "key_fingerprint": run["store"].get("key_fingerprint")},
        "config": run.get("config"), "settings": run.get("settings"),
        "encoder_fingerprint": lay["fingerprint"], "run_fingerprint": lay["run_fingerprint"],
        "benchmark": ({"results_sha256": provenance.sha256_file(summary.results_file(req.results)),
                       "results_store_id": results.store.store_id, "candidate": bench["candidate"],
                       "probe": bench["probe"]} if bench else None),
        "phi_scan": dict(context["phi_scan"]),
    }
    findings, scan_info = _scan(staging, audit, run, req, card_computed, prov, exp.phi_max_phrase, bar)
    if findings:
        _refuse(findings)
    prov["phi_scan"].update(scan_info)
    prov["files"] = provenance.file_table(staging)
    atomic.write_json(staging / provenance.PROVENANCE, prov)
    # The hashes were taken a moment ago from these very files; check the manifest reads back and lists them all
    # (`radadapt export verify` re-hashes everything, on any copy).
    listed = provenance.read_provenance(staging)["files"]
    present = {p.relative_to(staging).as_posix() for p in provenance.walk_files(staging)} - {provenance.PROVENANCE}
    if set(listed) != present:  # pragma: no cover - a programming error, never a user's
        raise DataError("export.verify_failed", "the export's manifest does not list exactly its files")
    bar.update(task, status="done")
    total = sum(r["bytes"] for r in prov["files"].values())
    return {"family": family, "files": len(prov["files"]) + 1, "bytes": total,
            "provenance_sha256": provenance.sha256_file(staging / provenance.PROVENANCE),
            "encoder_fingerprint": lay["fingerprint"],
            "same_weights_as_run": True, "phi_scan": prov["phi_scan"], "benchmark": bench is not None,
            "layout": [p for p, _ in lay["layout"]]}


# -- the scan ------------------------------------------------------------------------------------------------------
_COMPOSED = {"image_tower/config.json", "text_tower/config.json"}  # radadapt constants and numbers only


def _site_paths(run: dict, run_dir: Path, req: ExportRequest) -> list[str]:
    """Absolute paths of this site that an export must not carry (the run, the store, the base model, ...)."""
    paths = [str(run_dir.resolve()), str((run.get("store") or {}).get("path") or ""),
             str((run.get("base_model") or {}).get("path") or "")]
    for p in (req.store, req.site_key, req.private_dir, req.results):
        if p is not None:
            paths.append(str(Path(p).resolve()))
    return [p for p in paths if len(p) > 1]


def _scan_items(staging: Path, card_computed: set[str], base_hashes: set[str], max_phrase: int):  # noqa: ANN202
    """ScanText per exported file; files byte-identical to a base model file are listed instead (see
    ``_base_hashes``; scanning the CLIP vocabulary against a large site's name parts would match every common
    first name, so an unchanged tokenizer could never be exported)."""
    import yaml

    from radadapt.models import weights

    items, unchanged = [], []
    for path in provenance.walk_files(staging):
        rel = path.relative_to(staging).as_posix()
        if base_hashes and provenance.sha256_file(path) in base_hashes:
            unchanged.append(rel)
            continue
        if path.suffix in (".safetensors", ".pt"):  # weights: the header's metadata is text
            table, meta = weights.read_header(path)
            known = [v for v in meta.values() if v == "pt" or v.isdigit()]  # what radadapt's writers put there
            structural = phi_scan.structural_phrases({"keys": list(meta), "tensors": list(table), "v": known},
                                                     max_phrase)
            structural |= {phi_scan.normalize(v) for v in known}
            items.append(phi_scan.ScanText(rel, json.dumps(meta, indent=1, ensure_ascii=False), structural))
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        structural: set[str] = set()
        if rel == CARD:
            structural = set(card_computed)
        elif path.suffix in (".json", ".yaml", ".yml") and not rel.startswith(("tokenizer/", "mi2/language_model/")):
            try:  # radadapt or the family writers produced it: keys and numbers are structure
                doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
                structural = phi_scan.structural_phrases(doc, max_phrase)
                if rel in _COMPOSED:
                    structural |= phi_scan.phrases(text, max_phrase)
            except (ValueError, yaml.YAMLError):
                structural = set()
        items.append(phi_scan.ScanText(rel, text, structural, sections=path.suffix == ".md"))
    return items, unchanged


def _scan(staging: Path, audit, run: dict, req: ExportRequest, card_computed: set[str], prov: dict,  # noqa: ANN001
          max_phrase: int, bar) -> tuple[list[phi_scan.Finding], dict]:  # noqa: ANN001
    if audit is None:
        return [], {"status": "skipped"}
    scanner = phi_scan.PhiScanner(audit, public=set(card_mod.public_phrases(max_phrase)), max_phrase=max_phrase,
                                  paths=_site_paths(run, Path(req.run), req))
    items, unchanged = _scan_items(staging, card_computed, _base_hashes(run), max_phrase)
    draft = json.dumps(prov, indent=2, sort_keys=True, ensure_ascii=False)  # its file table is hashes and sizes
    items.append(phi_scan.ScanText(provenance.PROVENANCE, draft, phi_scan.structural_phrases(prov, max_phrase)))
    task = bar.add_task("identifier scan", total=len(items))
    findings: list[phi_scan.Finding] = []
    for item in items:
        findings += scanner.scan(item)
        bar.advance(task)
    return findings, {"status": "passed", "files_scanned": len(items), "files_unchanged_from_base": sorted(unchanged),
                      "phrases_checked": scanner.phrases_checked, "max_phrase": max_phrase}


def _refuse(findings: list[phi_scan.Finding]) -> None:
    for f in findings[:20]:
        console.warn(f.describe())
    if len(findings) > 20:
        console.warn(f"... and {len(findings) - 20} more")
    first = findings[0]
    if first.file == CARD:
        hint = ("the card shows text from your config and data (site name, licence note, manufacturer and label "
                "names): change the text at that line; [export] card_manufacturers = false leaves manufacturers out")
    elif first.kind == "path":
        hint = "a file of the run records a local path; remove it from the run's final model files and export again"
    elif first.file.startswith(("tokenizer/", "mi2/language_model/")):
        hint = "the tokenizer differs from the base model's; radadapt never trains it: restore the base tokenizer files"
    else:
        hint = "inspect that file in the run's final/ folder and remove what does not belong in a model"
    raise PrivacyError(
        "export.phi_found",
        f"refusing to export: {first.describe()}" + (f" (and {len(findings) - 1} more)" if len(findings) > 1 else "")
        + "; nothing was written",
        hint=hint,
    )


def _remove_stale(out: Path) -> None:
    """Hidden folders a killed export to the same DIR left (they may hold a card that failed the scan)."""
    for stale in [*out.parent.glob(f".{out.name}.*.partial"), out.parent / f".{out.name}.replaced"]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _publish(staging: Path, out: Path) -> None:
    """Rename the finished export into place (replacing an earlier export only when --force allowed it)."""
    atomic.publish_dir(staging, out, old_suffix="replaced")
