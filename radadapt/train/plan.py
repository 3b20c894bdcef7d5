"""``radadapt train ... --dry-run``: what a run will read, do, take and need, before any of it happens.

Data and steps are exact (the same code selects them for the real run). Time, memory and disk are estimates and
say so: time = training FLOPs per image (analytic matmul count, ``Objective.flops_per_image``) x images /
(the device's dense bf16 peak x 35% utilisation, the project's goal for ViT-B/14 on one H100 and about what
Meta's own A100 runs achieved; research note perf_anchors.md §4). Devices without a known peak (CPUs, unlisted
GPUs) get no time estimate; ``--time-budget`` measures instead of guessing. Memory = fp32 weights of student
and teacher, gradients and two AdamW moments, plus the objective's activation estimate for one micro-batch.
Disk = ``keep_checkpoints`` checkpoints plus the final model directory.
"""

from __future__ import annotations

from typing import Any

# Dense 16-bit tensor-core peaks, TFLOP/s (NVIDIA datasheets via research note perf_anchors.md §4).
_PEAK_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.0),
                ("A10G", 70.0), ("A10", 125.0), ("L4", 121.0), ("V100", 125.0), ("RTX 4090", 165.2),
                ("RTX 3090", 71.0), ("A6000", 154.8))
MFU = 0.35
GiB = 1024**3


def device_peak_tflops(device: str) -> tuple[str, float | None]:
    if not device.startswith("cuda"):
        return "cpu", None
    import torch

    name = torch.cuda.get_device_name(torch.device(device))
    for key, peak in _PEAK_TFLOPS:
        if key in name:
            return name, peak
    return name, None


def make_plan(*, objective: Any, training_set: Any, batch_size: int, accum: int, world_size: int,
              steps: int | None, steps_rule: str, precision: str, device: str, keep_checkpoints: int,
              subset: int | None) -> dict[str, Any]:
    n = len(training_set.index)
    global_batch = batch_size * accum * world_size
    student = sum(p.numel() for p in objective.parameters() if p.requires_grad)
    everything = sum(p.numel() for p in objective.parameters())
    weights_bytes = 4 * everything
    train_state = weights_bytes + 4 * student * 3  # gradients + two AdamW moments, fp32
    activations = objective.activation_bytes_per_image(precision) * batch_size
    checkpoint_bytes = weights_bytes + 8 * student
    final_bytes = 2 * 4 * (everything - student)  # teacher in two layouts (transformers + Meta) + head
    plan: dict[str, Any] = {
        "family": objective.family,
        "data": {"train_images": training_set.n_train_images, "train_patients": training_set.n_train_patients,
                 "subset": subset, "images_used": n, "patients_used": len(training_set.patients)},
        "batch": {"per_process": batch_size, "accum": accum, "processes": world_size, "global": global_batch},
        "steps": {"planned": steps, "rule": steps_rule,
                  "epochs": None if steps is None else round(steps * global_batch / n, 3),
                  "images_seen": None if steps is None else steps * global_batch},
        "precision": precision,
        "device": device,
        "memory_gib_per_process": {"weights_and_optimizer": round(train_state / GiB, 2),
                                   "activations_estimate": round(activations / GiB, 2),
                                   "total_estimate": round((train_state + activations) / GiB, 2)},
        "disk_gib": {"per_checkpoint": round(checkpoint_bytes / GiB, 3), "checkpoints_kept": keep_checkpoints,
                     "final_model": round(final_bytes / GiB, 3),
                     "total_estimate": round((checkpoint_bytes * keep_checkpoints + final_bytes) / GiB, 3)},
        "settings": objective.settings.values,
        "rules": objective.settings.rules,
    }
    name, peak = device_peak_tflops(device)
    flops = objective.flops_per_image()
    estimate: dict[str, Any] = {"device_name": name, "train_gflops_per_image": round(flops / 1e9, 2)}
    if peak and steps:
        per_s = peak * 1e12 * MFU * world_size / flops
        estimate.update({"assumed_utilisation": MFU, "images_per_s": round(per_s, 1),
                         "hours": round(steps * global_batch / per_s / 3600, 2)})
    else:
        estimate["note"] = "no peak known for this device; use --time-budget to measure, or a short --max-steps run"
    plan["time_estimate"] = estimate
    return plan


def plan_lines(plan: dict[str, Any]) -> list[str]:
    d, b, s = plan["data"], plan["batch"], plan["steps"]
    m, disk, t = plan["memory_gib_per_process"], plan["disk_gib"], plan["time_estimate"]
    lines = [
        f"data:      {d['images_used']:,} images of {d['patients_used']:,} patients (train split: "
        f"{d['train_images']:,} images, {d['train_patients']:,} patients)"
        + (f"; --subset {d['subset']:,}" if d["subset"] else ""),
        f"batch:     {b['per_process']} per process x {b['accum']} accumulation x {b['processes']} process(es) "
        f"= {b['global']} images per step",
        f"steps:     {s['planned'] if s['planned'] is not None else 'measured at start'} ({s['rule']})"
        + (f", {s['epochs']} passes over the data" if s["epochs"] is not None else ""),
        f"precision: {plan['precision']} on {plan['device']}",
        f"memory:    ~{m['total_estimate']} GiB per process ({m['weights_and_optimizer']} weights+optimizer, "
        f"~{m['activations_estimate']} activations)",
        f"disk:      ~{disk['total_estimate']} GiB ({disk['checkpoints_kept']} checkpoints of "
        f"{disk['per_checkpoint']} GiB + final model {disk['final_model']} GiB)",
    ]
    if "hours" in t:
        lines.append(f"time:      ~{t['hours']} h at ~{t['images_per_s']} images/s ({t['device_name']}, "
                     f"{int(t['assumed_utilisation'] * 100)}% of peak assumed)")
    else:
        lines.append(f"time:      {t['note']}")
    lines.append("settings:")
    lines += [f"  - {r}" for r in plan["rules"]]
    return lines
