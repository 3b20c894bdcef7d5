"""Running chunks: in this process (one worker) or in a pool of worker processes, with progress and statistics.

Workers come from a fork server that imports the codecs and the pipeline once (spawning would import them per
worker, forking the CLI process could deadlock on the progress bar's thread). A ``RadadaptError`` raised in a
worker (a full disk) travels back as a dict and is raised again here; a worker that dies (out of memory) is
``ingest.worker_died``. Finished chunks are committed by the workers themselves, so any failure keeps them.
"""

from __future__ import annotations

import os
import queue as queue_mod
import time
from typing import Any, Callable, Iterator

from radadapt.errors import DataError, RadadaptError

_WORKER: dict[str, Any] = {}


def _init_worker(ctx_args: dict, key_file: str, progress: Any) -> None:
    from radadapt.ingest.chunk import Context
    from radadapt.sitekey import load_key

    _WORKER["ctx"] = Context(key=load_key(key_file), queue=progress, **ctx_args)


def _work(chunk: str, entries: list) -> dict:
    """Worker entry: RadadaptError does not pickle with its fields, so it travels as a dict."""
    from radadapt.ingest.chunk import process_chunk

    try:
        return process_chunk(_WORKER["ctx"], chunk, entries)
    except RadadaptError as exc:
        return {"error": {"type": type(exc).__name__, "code": exc.code, "message": exc.message, "hint": exc.hint}}


def _raise_worker_error(err: dict) -> None:
    import radadapt.errors as errors

    cls = getattr(errors, err["type"], RadadaptError)
    raise cls(err["code"], err["message"], hint=err["hint"])


def run_chunks(req: Any, ctx: Any, pending: Iterator[tuple[str, list]], n_pending: int, total: int, skipped: int,
               emit: Callable[[str, Any], None]) -> dict:
    stats: dict[str, Any] = {"decode": {}, "details": {}}
    n_workers = max(1, min(req.workers or default_workers(), n_pending or 1))
    emit("start", {"total": total, "skipped": skipped, "chunks": n_pending, "workers": n_workers})
    if not n_pending:
        return stats

    def absorb(summary: dict) -> None:
        if "error" in summary:
            _raise_worker_error(summary["error"])
        for ts, (n, s) in summary["decode"].items():
            acc = stats["decode"].setdefault(ts, {"files": 0, "seconds": 0.0})
            acc["files"] += n
            acc["seconds"] += s
        for label, n in summary["details"].items():
            stats["details"][label] = stats["details"].get(label, 0) + n

    t0 = time.perf_counter()
    if n_workers == 1:
        from radadapt.ingest.chunk import process_chunk

        class _Direct:
            def put(self, n: int) -> None:
                emit("advance", n)

        ctx.queue = _Direct()
        for cid, entries in pending:
            absorb(process_chunk(ctx, cid, entries))
    else:
        _run_pool(req, ctx, pending, n_workers, emit, absorb)
    wall = time.perf_counter() - t0
    for acc in stats["decode"].values():
        acc["per_second_per_worker"] = round(acc["files"] / acc["seconds"], 2) if acc["seconds"] else None
        acc["seconds"] = round(acc["seconds"], 3)
    stats["wall_seconds"] = round(wall, 3)
    return stats


def _run_pool(req: Any, ctx: Any, pending: Iterator[tuple[str, list]], n_workers: int,
              emit: Callable[[str, Any], None],
              absorb: Callable[[dict], None]) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # Not fork: the parent runs rich's refresh thread, and forking a threaded process can deadlock. A fork server
    # imports the heavy modules once and forks workers from that clean process (spawn would import per worker).
    mpctx = mp.get_context("forkserver")
    mpctx.set_forkserver_preload(["radadapt.ingest.chunk", "radadapt.ingest.dicomio", "radadapt.ingest.pixels",
                                  "radadapt.ingest.select", "pydicom.pixels.processing", "PIL.Image", "scipy.ndimage",
                                  "openjpeg", "rle", "jpeg_ls", "gdcm", "libjpeg"])
    progress = mpctx.Queue()
    ctx_args = {"archive": ctx.archive, "store": ctx.store, "work": ctx.work, "cfg": ctx.cfg,
                "masks_dir": ctx.masks_dir, "masks": ctx.masks}
    pool = ProcessPoolExecutor(n_workers, mp_context=mpctx, initializer=_init_worker,
                               initargs=(ctx_args, str(req.key_file), progress))
    todo = iter(pending)
    running: set = set()
    try:
        while True:
            while len(running) < 2 * n_workers:
                nxt = next(todo, None)
                if nxt is None:
                    break
                running.add(pool.submit(_work, *nxt))
            if not running:
                break
            finished, running = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress, emit)
            for fut in finished:
                absorb(fut.result())
        _drain(progress, emit)
    except BrokenProcessPool:
        raise DataError("ingest.worker_died", "a worker process died (out of memory?); finished chunks are kept",
                        hint="rerun the same command to resume, perhaps with fewer --workers") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _drain(progress: Any, emit: Callable[[str, Any], None]) -> None:
    while True:
        try:
            emit("advance", progress.get_nowait())
        except queue_mod.Empty:
            return
        except (OSError, ValueError, EOFError):
            return


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
