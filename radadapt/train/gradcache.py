"""Gradient caching (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup").

A contrastive loss couples every pair of a batch, so plain gradient accumulation (a loss per micro-batch) shrinks
the contrastive batch to the micro-batch. GradCache computes the gradient of the loss over the whole (global)
batch with the memory of one micro-batch:

1. forward every micro-batch without a graph, keeping only its embeddings, and record the RNG state before
   each one (drop-path draws);
2. gather the embeddings of every rank, compute the loss on them as leaf tensors and backpropagate to the
   embeddings only: ``g = dL/d(embedding)``, plus ``dL/dT`` for the temperature;
3. for each micro-batch, restore its RNG state, forward again with a graph and backpropagate the surrogate
   ``sum(embedding * g)`` (and ``T * dL/dT`` once), whose gradient with respect to the weights is exactly the
   chain rule's ``dL/d(weights)`` through that micro-batch.

The result equals one full-batch step up to float rounding (tested). The price is a second forward (about a third
more compute than a plain step); the memory no longer grows with the batch. Under DDP every rank computes the
same global loss, so ``dL/d(own rows)`` is complete on each rank; DDP then *averages* the weight gradients over
ranks, which is why the surrogate is multiplied by the world size (the replicated temperature term is not).
Microsoft's UniCL trainer does the same (research note mi2_unicl.md §5).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable

import torch

Embeddings = dict[str, torch.Tensor]


@dataclass
class RandState:
    """The torch generator states a forward may draw from (CPU, and the current CUDA device if any)."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None = None
    cuda_device: int | None = None

    @classmethod
    def capture(cls, device: torch.device) -> "RandState":
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            return cls(torch.get_rng_state(), torch.cuda.get_rng_state(index), index)
        return cls(torch.get_rng_state())

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.cuda_device)


def all_gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's rows (no gradient), concatenated in rank order, and the offset of this rank's rows."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts), dist.get_rank() * x.shape[0]


def cached_backward(
    micro_batches: list[dict],
    *,
    embed: Callable[[dict], Embeddings],
    model: Callable[[dict], Embeddings],
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    autocast: Callable[[], AbstractContextManager],
    backward: Callable[[torch.Tensor], None],
    sync: Callable[[bool], AbstractContextManager],
    gather: Callable[[torch.Tensor], tuple[torch.Tensor, int]] = all_gather_rows,
    world_size: int = 1,
) -> dict[str, torch.Tensor]:
    """One optimizer step's gradients by GradCache; returns the loss parts (detached).

    ``embed(batch)`` is the graph-free forward (called under ``no_grad``), ``model(batch)`` the forward whose
    backward reaches the weights (the DDP-wrapped module under DDP); both return ``image_embeds``,
    ``text_embeds`` and ``logit_scale`` (T). Batches carry ``labels``. ``loss_fn(img, txt, T, labels)`` computes the
    loss on the gathered batch. ``backward`` applies loss scaling; ``sync(is_last)`` limits DDP's gradient
    all-reduce to the last re-forward.
    """
    states: list[RandState] = []
    images, texts = [], []
    scale = None
    for batch in micro_batches:
        device = batch["labels"].device
        states.append(RandState.capture(device))
        with torch.no_grad(), autocast():
            out = embed(batch)
        images.append(out["image_embeds"].float())
        texts.append(out["text_embeds"].float())
        scale = out["logit_scale"].float()
    assert scale is not None, "no micro-batch"
    sizes = [t.shape[0] for t in images]
    local_img, local_txt = torch.cat(images), torch.cat(texts)
    labels = torch.cat([b["labels"] for b in micro_batches])
    all_img, offset = gather(local_img)
    all_txt, _ = gather(local_txt)
    all_labels, _ = gather(labels)
    all_img.requires_grad_(True)
    all_txt.requires_grad_(True)
    scale_leaf = scale.detach().requires_grad_(True)
    with torch.enable_grad():
        parts = loss_fn(all_img, all_txt, scale_leaf, all_labels)
        parts["loss"].backward()
    n = local_img.shape[0]
    g_img = all_img.grad[offset:offset + n].split(sizes)
    g_txt = all_txt.grad[offset:offset + n].split(sizes)
    g_scale = scale_leaf.grad
    last = len(micro_batches) - 1
    for k, batch in enumerate(micro_batches):
        states[k].restore()
        with sync(k == last):
            with autocast():
                out = model(batch)
            surrogate = (out["image_embeds"].float() * g_img[k]).sum() + (out["text_embeds"].float() * g_txt[k]).sum()
            surrogate = surrogate * world_size
            if k == last:
                surrogate = surrogate + out["logit_scale"].float() * g_scale
            backward(surrogate)
    return {name: value.detach() for name, value in parts.items()}
