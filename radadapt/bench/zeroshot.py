"""Zero-shot classification from label prompts and image -> report retrieval, for models with a text tower (MI2).

Zero-shot follows CheXzero (Tiu et al. 2022): for each label a positive and a negative prompt; the label's score
is the softmax probability of the positive one, using the model's own logit scale. Each side is an ensemble of
templates (the text embeddings averaged and re-normalised, Radford et al. 2021 §3.1.4), because single prompts
swing AUROC by several points. The prompt set is versioned (``PROMPT_SET``) and recorded in results.json.

Retrieval: every test image with a report queries the test reports (one per study, the gallery capped at
``gallery`` studies); recall@k is the share of queries whose own study's report ranks in the top k. Report text
only lives in memory here; nothing of it is written or logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from radadapt.models.encoder import Encoder

PROMPT_SET = "radadapt-cxr-prompts-v1"
RECALL_KS = (1, 5, 10)

_FINDING_POS = ("{x}", "chest radiograph showing {x}", "findings consistent with {x}")
_FINDING_NEG = ("no {x}", "chest radiograph without {x}", "no evidence of {x}")
_DEVICE_POS = ("{x} in place", "chest radiograph with {x}", "{x} is present")
_DEVICE_NEG = ("no {x}", "chest radiograph without {x}", "no {x} is seen")
_SPECIAL = {
    "no finding": (("no acute cardiopulmonary abnormality", "normal chest radiograph", "the lungs are clear"),
                   ("abnormal chest radiograph", "acute cardiopulmonary abnormality", "findings are present")),
    "support devices": (("support devices in place", "lines and tubes are present", "medical device present"),
                        ("no support devices", "no lines or tubes", "no medical device")),
}


def label_prompts(label: str, group: str) -> tuple[list[str], list[str]]:
    """(positive templates, negative templates) for one label column."""
    key = label.strip().lower()
    if key in _SPECIAL:
        pos, neg = _SPECIAL[key]
        return list(pos), list(neg)
    pos, neg = (_FINDING_POS, _FINDING_NEG) if group == "findings" else (_DEVICE_POS, _DEVICE_NEG)
    return [t.format(x=key) for t in pos], [t.format(x=key) for t in neg]


def _ensemble(encoder: "Encoder", texts: Sequence[str]) -> np.ndarray:
    e = encoder.encode_text(list(texts)).float().cpu().numpy()
    m = e.mean(0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def zero_shot_scores(encoder: "Encoder", image_emb: np.ndarray, labels: dict[str, str]) -> np.ndarray:
    """Probability of the positive prompt per image and label, [n, L]. ``image_emb`` is L2-normalised."""
    scale = float(encoder.logit_scale)
    out = np.empty((image_emb.shape[0], len(labels)))
    for j, (label, group) in enumerate(labels.items()):
        pos, neg = label_prompts(label, group)
        t = np.stack([_ensemble(encoder, pos), _ensemble(encoder, neg)])  # [2, e]
        logits = scale * image_emb @ t.T
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        out[:, j] = p[:, 0] / p.sum(1)
    return out


def retrieval_hits(encoder: "Encoder", image_emb: np.ndarray, study_keys: Sequence[str],
                   reports: Sequence[str | None], gallery: int = 5000, ks: Sequence[int] = RECALL_KS,
                   chunk: int = 2048) -> tuple[np.ndarray, dict[int, np.ndarray], int]:
    """(query image indices, {k: 0/1 hit per query}, gallery size). Gallery: first report of each study."""
    first: dict[str, str] = {}
    for s, r in zip(study_keys, reports):
        if r and r.strip() and s not in first and len(first) < gallery:
            first[s] = r
    studies = list(first)
    col = {s: i for i, s in enumerate(studies)}
    queries = np.array([i for i, s in enumerate(study_keys) if s in col], dtype=np.int64)
    if len(studies) < 2 or queries.size == 0:
        return queries, {k: np.zeros(0) for k in ks}, len(studies)
    text = []
    for start in range(0, len(studies), 256):
        text.append(encoder.encode_text([first[s] for s in studies[start:start + 256]]).float().cpu().numpy())
    t = np.concatenate(text)
    target = np.array([col[study_keys[i]] for i in queries])
    ranks = np.empty(queries.size, dtype=np.int64)
    for start in range(0, queries.size, chunk):
        q = queries[start:start + chunk]
        sims = image_emb[q] @ t.T
        own = sims[np.arange(q.size), target[start:start + chunk]]
        ranks[start:start + q.size] = (sims > own[:, None]).sum(1)  # 0 = own report ranked first
    return queries, {k: (ranks < k).astype(np.float64) for k in ks}, len(studies)
