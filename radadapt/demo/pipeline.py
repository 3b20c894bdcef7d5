"""`radadapt demo`: the whole journey on the built-in synthetic hospital, in one command (docs/demo.md).

Each stage calls its stage's library entry point with the demo site's settings (``templates/demo.toml``):

    site      a demo site: radadapt.toml, a key DERIVED FROM THE SEED (reproducible, not secret), private/
    archive   ``demo.archive.generate_archive``: the synthetic PACS + RIS export (fake PHI included)
    ingest    ``ingest.pipeline.run_ingest`` (device masks too); labels: ``labels.extract.label_store``
    weights   ``models.rad_dino.write_tiny`` / ``models.mi2.write_tiny``: tiny random "open weights"
    per family: train (``train.run.start`` / ``resume``), benchmark (``bench.run.run_benchmark``), export
              (``export.exporter.export_run``)
    report    ``commands.report.make_report`` per family (with the segmentation overlays: the patients are
              synthetic), and DIR/report/index.html linking them

``families`` narrows the journey to one model family (``radadapt demo --model rad-dino``; the end-to-end test).
Everything lands under DIR, beside ``DIR/demo.json`` (the marker and the state). Resumable: stages run in order;
a stage recorded as done whose outputs are still there is skipped; the first one that is not resumes its own
partial work (ingest chunks, training checkpoints, cached benchmark features); once a stage has run, every later
stage starts afresh from it. A stage whose code this radadapt version lacks is recorded as unavailable.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from radadapt import __version__, atomic, console
from radadapt.errors import RadadaptError, UsageError

STATE_FILE = "demo.json"
STATE_FORMAT = "radadapt-demo"
STATE_VERSION = 1
DEFAULT_N = 1200  # radiographs: 849 kept images of 444 patients, 150 test patients at seed 0 (docs/demo.md)
DEFAULT_SIZE = 256  # long side of the synthetic radiographs; the store keeps 128 px, the tiny models see 112
FAMILIES = ("rad_dino", "mi2")
NAMES = {"rad_dino": "RAD-DINO", "mi2": "MI2"}
SLUG = {"rad_dino": "rad-dino", "mi2": "mi2"}
# Optimizer steps and images per step of each family's run (why: docs/demo.md, "Settings, and why").
TRAINING = {"rad_dino": {"steps": 150, "batch_size": 24}, "mi2": {"steps": 120, "batch_size": 32}}
TORCH_THREADS = 1  # tiny models: more threads buy little, and on a busy 2-core machine they cost several-fold


class StageUnavailable(Exception):
    """This radadapt version cannot run the stage (its module or objective is not installed)."""


@dataclass(frozen=True)
class DemoLayout:
    """Where every stage writes, all under ``root``."""

    root: Path

    site = property(lambda self: self.root / "site")
    config = property(lambda self: self.root / "site" / "radadapt.toml")
    key = property(lambda self: self.root / "site" / "site.key")
    private = property(lambda self: self.root / "site" / "private")
    hospital = property(lambda self: self.root / "hospital")
    store = property(lambda self: self.root / "store")
    reports = property(lambda self: self.root / "report")

    def weights(self, family: str) -> Path:
        return self.root / "open-weights" / SLUG[family]

    def run(self, family: str) -> Path:
        return self.root / "runs" / SLUG[family]

    def bench(self, family: str) -> Path:
        return self.root / "benchmark" / SLUG[family]

    def export(self, family: str) -> Path:
        return self.root / "export" / SLUG[family]

    def report(self, family: str) -> Path:
        return self.root / "report" / SLUG[family]


@dataclass
class Stage:
    name: str
    title: str
    action: Callable[[], dict]
    outputs: list[Path]  # all must exist for a recorded "done" to stand
    owned: list[Path]  # removed before the stage starts afresh


def demo_settings(n: int, seed: int, size: int, families: tuple[str, ...] = FAMILIES) -> dict[str, Any]:
    """What makes two demos the same demo (recorded in demo.json; a rerun must match it)."""
    from importlib.resources import files

    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise UsageError("demo.bad_family", f"unknown model family {unknown[0] if unknown else '(none)'}",
                         hint="choose from " + ", ".join(SLUG[f] for f in FAMILIES))
    config = files("radadapt.templates").joinpath("demo.toml").read_bytes()
    return {"n": n, "seed": seed, "size": size, "families": [f for f in FAMILIES if f in families],
            "training": TRAINING, "config_sha256": hashlib.sha256(config).hexdigest()}


def run_demo(out: str | os.PathLike, *, n: int = DEFAULT_N, seed: int = 0, size: int = DEFAULT_SIZE,
             workers: int | None = None, families: tuple[str, ...] = FAMILIES) -> dict[str, Any]:
    """Run (or continue) the demo in ``out``; returns the summary (``radadapt demo --json``). ``families``
    picks the model families to train (default both: "rad_dino", "mi2")."""
    layout = DemoLayout(Path(out))
    settings = demo_settings(n, seed, size, tuple(families))
    state = open_demo_dir(layout.root, settings)
    workers = workers or min(2, os.cpu_count() or 1)
    stages = plan_stages(layout, settings, workers)
    t_start = time.monotonic()
    ran = False
    with torch_threads(TORCH_THREADS):
        for i, stage in enumerate(stages, 1):
            prefix = f"[{i}/{len(stages)}] {stage.title}"
            record = state["stages"].get(stage.name, {})
            if not ran and record.get("status") == "done" and all(p.exists() for p in stage.outputs):
                console.info(f"{prefix}: done earlier, kept")
                continue
            if ran:  # an earlier stage ran again: this stage's old outputs are stale
                for path in stage.owned:
                    _remove(path, layout.root)
            ran = True
            console.info(f"{prefix} ...")
            t0, c0 = time.monotonic(), cpu_seconds()
            try:
                result = stage.action()
            except StageUnavailable as exc:
                state["stages"][stage.name] = {"status": "unavailable", "reason": str(exc)}
                atomic.write_json(layout.root / STATE_FILE, state)
                console.warn(f"{prefix}: not available in this radadapt version ({exc})")
                continue
            except RadadaptError as exc:
                if exc.code == "train.interrupted":  # the trainer turned Ctrl-C into a checkpoint and a stop
                    raise KeyboardInterrupt from None
                raise
            wall, cpu = time.monotonic() - t0, cpu_seconds() - c0
            state["stages"][stage.name] = {"status": "done", "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                           "result": result}
            atomic.write_json(layout.root / STATE_FILE, state)
            console.info(f"{prefix}: done in {_duration(wall)} (elapsed {_duration(time.monotonic() - t_start)})")
    from radadapt.demo.outcome import summarise_demo

    summary = summarise_demo(layout, state)
    state["summary"] = summary
    atomic.write_json(layout.root / STATE_FILE, state)
    return summary


def open_demo_dir(root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Create or reopen DIR: refuses a file, a non-empty folder that is not a demo, or a demo of other settings."""
    import json

    if root.exists() and not root.is_dir():
        raise UsageError("demo.dir_not_a_folder", f"{root} exists and is not a folder", hint="choose another --out")
    marker = root / STATE_FILE
    if marker.is_file():
        try:
            state = json.loads(marker.read_text(encoding="utf-8"))
            ok = state.get("format") == STATE_FORMAT and isinstance(state.get("stages"), dict)
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise UsageError("demo.bad_state", f"{marker} is damaged", hint="delete the folder and run the demo again")
        if state.get("settings") != settings:
            old = state.get("settings") or {}
            raise UsageError(
                "demo.other_settings",
                f"{root} holds a demo with other settings (n {old.get('n')}, seed {old.get('seed')}, size "
                f"{old.get('size')}, models {', '.join(SLUG[f] for f in old.get('families', FAMILIES))}, or "
                "another radadapt version's demo settings)",
                hint="rerun with the same --n/--seed/--model, choose a new --out, or delete the folder to start over",
            )
        return state
    if root.is_dir() and any(root.iterdir()):
        raise UsageError("demo.dir_not_empty", f"{root} is not empty and holds no demo (no {STATE_FILE})",
                         hint="choose a new or empty folder for --out")
    state = {"format": STATE_FORMAT, "version": STATE_VERSION, "radadapt_version": __version__,
             "settings": settings, "stages": {}}
    atomic.write_json(marker, state)
    return state


def plan_stages(layout: DemoLayout, settings: dict[str, Any], workers: int) -> list[Stage]:
    """The demo's stages in order (a function of the layout and settings only)."""
    n, seed, size = settings["n"], settings["seed"], settings["size"]
    L = layout
    stages = [
        Stage("site", "demo site (config, reproducible demo key, private folder)", lambda: write_demo_site(L, seed),
              [L.config, L.key, L.private], [L.site]),
        Stage("archive", f"synthetic hospital ({n} radiographs, seed {seed})",
              lambda: _archive(L, n, seed, size, workers), [L.hospital / "demo_archive.json"], [L.hospital]),
        Stage("ingest", "ingest (DICOM -> de-identified store)", lambda: _ingest(L, workers),
              [L.store / "store.json"], [L.store]),
        Stage("labels", "labels from the reports", lambda: _labels(L), [L.store / "labels.json"], []),
        Stage("weights", "tiny open-weights checkpoints", lambda: _weights(L, seed, settings["families"]),
              [L.weights(f) for f in settings["families"]], [L.root / "open-weights"]),
    ]
    for fam in settings["families"]:
        t = TRAINING[fam]
        stages += [
            Stage(f"train-{SLUG[fam]}", f"train {NAMES[fam]} ({t['steps']} steps of {t['batch_size']} images)",
                  lambda f=fam: _train(L, f, seed), [L.run(fam) / "final"], [L.run(fam)]),
            Stage(f"benchmark-{SLUG[fam]}", f"benchmark {NAMES[fam]}: adapted vs open weights",
                  lambda f=fam: _benchmark(L, f, seed), [L.bench(fam) / "results.json"], [L.bench(fam)]),
            Stage(f"export-{SLUG[fam]}", f"export the adapted {NAMES[fam]}", lambda f=fam: _export(L, f),
                  [L.export(fam) / "provenance.json"], [L.export(fam)]),
        ]
    stages.append(Stage("report", "reports", lambda: _reports(L), [L.reports / "index.html"], [L.reports]))
    return stages


# -- stages ----------------------------------------------------------------------------------------------------
def demo_key(seed: int) -> str:
    """The demo site's key: derived from the seed so the demo's pseudonyms and splits are reproducible. It is
    NOT secret; a real site's key comes from `radadapt init` (256 random bits)."""
    return hashlib.sha256(f"radadapt-demo-site-key\x00{seed}".encode()).hexdigest()


def write_demo_site(layout: DemoLayout, seed: int) -> dict:
    from importlib.resources import files

    layout.site.mkdir(parents=True, exist_ok=True)
    atomic.write_text(layout.config, files("radadapt.templates").joinpath("demo.toml").read_text(encoding="utf-8"))
    atomic.write_text(layout.key, demo_key(seed) + "\n", perms=0o600)
    layout.private.mkdir(exist_ok=True)
    os.chmod(layout.private, 0o700)
    atomic.write_text(layout.site / "README.txt",
                      "DEMO SITE. site.key is derived from the demo's seed so that the demo is reproducible: it is "
                      "not secret.\nNever ingest real data with it; create a real site with `radadapt init SITE_DIR`."
                      "\nprivate/ holds the ingest audit (archive paths, identifier fingerprints); nothing exports it.\n")
    from radadapt.sitekey import load_key

    return {"config": str(layout.config), "key_fingerprint": load_key(layout.key).fingerprint()}


def _archive(layout: DemoLayout, n: int, seed: int, size: int, workers: int) -> dict:
    from radadapt.demo.archive import generate_archive

    r = generate_archive(layout.hospital, n=n, seed=seed, size=size, workers=workers)
    return {k: r.get(k) for k in ("files", "radiographs", "patients", "studies", "reports", "masks")}


def _ingest(layout: DemoLayout, workers: int) -> dict:
    from radadapt.config import load_config
    from radadapt.ingest.pipeline import IngestRequest, run_ingest

    cfg = load_config(layout.config).ingest
    with _IngestProgress() as bar:
        r = run_ingest(IngestRequest(archive=layout.hospital / "archive", reports=layout.hospital / "reports.csv",
                                     store=layout.store, key_file=layout.key, cfg=cfg, private_dir=layout.private,
                                     workers=workers, masks=layout.hospital / "masks", on_event=bar.event))
    return {"total_files": r["total_files"], "ok": r["ok"], "splits": r["store"].get("splits")}


def _labels(layout: DemoLayout) -> dict:
    from radadapt.labels.extract import label_store

    r = label_store(layout.store, workers=1)
    return {k: r.get(k) for k in ("n_studies", "n_reports") if k in r}


def _weights(layout: DemoLayout, seed: int, families: list[str]) -> dict:
    from radadapt.models import mi2, rad_dino

    if "rad_dino" in families:
        rad_dino.write_tiny(layout.weights("rad_dino"), seed=seed, overwrite=True)
    if "mi2" in families:
        if layout.weights("mi2").exists():  # mi2.write_tiny does not overwrite
            shutil.rmtree(layout.weights("mi2"))
        mi2.write_tiny(layout.weights("mi2"), seed=seed)
    return {f: str(layout.weights(f)) for f in families}


def _train(layout: DemoLayout, family: str, seed: int) -> dict:
    from radadapt.train import objectives
    from radadapt.train import run as train_run

    try:
        objectives.require(family)
    except UsageError as exc:
        if exc.code == "train.objective_unavailable":
            raise StageUnavailable(f"training {NAMES[family]}") from None
        raise
    run_dir = layout.run(family)
    if (run_dir / "run.json").is_file():
        r = train_run.resume(run_dir)
    else:
        if run_dir.exists():  # stopped before run.json existed: nothing worth keeping
            _remove(run_dir, layout.root)
        t = TRAINING[family]
        r = train_run.start(train_run.TrainRequest(
            family=SLUG[family], store=layout.store, weights=layout.weights(family), out=run_dir,
            max_steps=t["steps"], batch_size=t["batch_size"], config=layout.config, overrides={"seed": seed}))
    return {k: r.get(k) for k in ("steps", "images", "global_batch", "images_per_s")}


def _benchmark(layout: DemoLayout, family: str, seed: int) -> dict:
    from radadapt.bench.run import BenchmarkRequest, run_benchmark
    from radadapt.config import load_config

    if not (layout.run(family) / "final").is_dir():
        raise StageUnavailable(f"no trained {NAMES[family]} to compare")
    cfg = load_config(layout.config).benchmark.model_copy(update={"seed": seed})
    res = run_benchmark(BenchmarkRequest(store=layout.store, baseline=layout.weights(family),
                                         candidates=[layout.run(family)], out=layout.bench(family), config=cfg))
    return {"results": str(layout.bench(family) / "results.json"), "headline_probe": res.headline_probe}


def _export(layout: DemoLayout, family: str) -> dict:
    try:
        from radadapt.export.exporter import ExportRequest, export_run
    except ModuleNotFoundError:
        raise StageUnavailable("`radadapt export`") from None
    if not (layout.run(family) / "final").is_dir():
        raise StageUnavailable(f"no trained {NAMES[family]} to export")
    results = layout.bench(family) if (layout.bench(family) / "results.json").is_file() else None
    r = export_run(ExportRequest(run=layout.run(family), out=layout.export(family), results=results,
                                 site_key=layout.key, private_dir=layout.private, config=layout.config, force=True))
    return {"files": r.get("files"), "phi_scan": (r.get("phi_scan") or {}).get("status")}


def _reports(layout: DemoLayout) -> dict:
    try:
        from radadapt.commands.report import make_report
    except ModuleNotFoundError:
        raise StageUnavailable("`radadapt report`") from None
    from radadapt.demo.outcome import write_index

    done = {}
    for fam in FAMILIES:  # the families this demo did not train have no results.json
        if (layout.bench(fam) / "results.json").is_file():
            # overlays: the demo's test patients are synthetic, so their radiographs may be shown
            rep = make_report(layout.bench(fam), layout.report(fam), overlays=True)
            done[fam] = rep["report_html"]
    write_index(layout)
    return {"reports": done, "index": str(layout.reports / "index.html")}


# -- helpers ---------------------------------------------------------------------------------------------------
class _IngestProgress:
    """Ingest's progress events on a console progress bar (files done, phase)."""

    def __enter__(self) -> "_IngestProgress":
        self._cm = console.progress()
        self.bar, self.task = self._cm.__enter__(), None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)

    def event(self, kind: str, value: Any) -> None:
        if kind == "start":
            self.task = self.bar.add_task("ingest", total=value["total"], status=f"{value['workers']} workers")
            self.bar.advance(self.task, value["skipped"])
        elif kind == "advance" and self.task is not None:
            self.bar.advance(self.task, value)
        elif kind == "phase" and self.task is not None:
            self.bar.update(self.task, status=str(value))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, then restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (loader and archive workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _remove(path: Path, root: Path) -> None:
    """Delete a demo output; refuses anything outside the demo folder (a guard against a wrong path)."""
    if root.resolve() not in path.resolve().parents:
        raise RuntimeError(f"refusing to delete {path}: not inside the demo folder")
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
