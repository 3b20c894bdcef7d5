"""UniCLLoss against values computed by hand (plain NumPy, written from the paper's per-row form) on tiny inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radadapt.train.losses.unicl import UniCLLoss, unicl_loss, unicl_targets


def _unit(rows):
    a = np.asarray(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _by_hand(img, txt, scale, labels):
    """Yang et al. 2022 §3.2 with Microsoft's label rule, one row at a time."""
    labels = list(labels)
    keep = [i for i, y in enumerate(labels) if y >= 0]
    img, txt = img[keep], txt[keep]
    ys, fresh = [], max([y for y in labels if y > 0], default=0)
    for i in keep:
        if labels[i] == 0:
            fresh += 1
            ys.append(fresh)
        else:
            ys.append(labels[i])
    s = scale * img @ txt.T
    n = len(ys)

    def direction(logits):
        total = 0.0
        for a in range(n):
            logp = logits[a] - np.log(np.exp(logits[a]).sum())
            pos = [b for b in range(n) if ys[b] == ys[a]]
            total += -sum(logp[b] for b in pos) / len(pos)
        return total / n

    i2t, t2i = direction(s), direction(s.T)
    return i2t, t2i, 0.5 * (i2t + t2i)


def _t(a):
    return torch.tensor(a, dtype=torch.float32)


IMG = _unit([[1.0, 0.2, 0.0], [0.9, 0.1, 0.3], [0.0, 1.0, 0.2], [0.2, -0.3, 1.0]])
TXT = _unit([[1.0, 0.0, 0.1], [0.7, 0.4, 0.0], [0.1, 0.9, 0.4], [-0.2, 0.1, 1.0]])


def test_two_images_sharing_a_label_and_one_report_by_hand():
    img, txt, labels = IMG[:3], TXT[:3], [5, 5, 0]
    i2t, t2i, loss = _by_hand(img, txt, 2.0, labels)
    out = unicl_loss(_t(img), _t(txt), torch.tensor(2.0), torch.tensor(labels))
    assert float(out["unicl_i2t"]) == pytest.approx(i2t, rel=1e-5)
    assert float(out["unicl_t2i"]) == pytest.approx(t2i, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(loss, rel=1e-5)
    # the same numbers written out: rows 0 and 1 have positives {0, 1} (normalised by 2), row 2 only itself
    s = 2.0 * img @ txt.T
    lse = lambda v: np.log(np.exp(v).sum())  # noqa: E731
    rows = [-(s[a, 0] + s[a, 1]) / 2 + lse(s[a]) for a in (0, 1)] + [-s[2, 2] + lse(s[2])]
    cols = [-(s[0, b] + s[1, b]) / 2 + lse(s[:, b]) for b in (0, 1)] + [-s[2, 2] + lse(s[:, 2])]
    assert i2t == pytest.approx(np.mean(rows), rel=1e-12) and t2i == pytest.approx(np.mean(cols), rel=1e-12)
    assert float(out["positives"]) == pytest.approx(5 / 3)


def test_targets_follow_microsofts_rule():
    kept, m = unicl_targets(torch.tensor([3, 0, 3, -1, 0, 7]))
    assert kept.tolist() == [True, True, True, False, True, True]
    expected = np.array([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(m.numpy(), expected)  # two captions never equal each other or a class


def test_repeated_labels_by_hand():
    labels = [1, 2, 1, 2]
    i2t, t2i, loss = _by_hand(IMG, TXT, 3.5, labels)
    out = unicl_loss(_t(IMG), _t(TXT), torch.tensor(3.5), torch.tensor(labels))
    assert float(out["loss"]) == pytest.approx(loss, rel=1e-5)
    assert float(out["unicl_i2t"]) == pytest.approx(i2t, rel=1e-5) and float(out["unicl_t2i"]) == pytest.approx(t2i, rel=1e-5)
    # every pair shares its class with one other: not the CLIP value
    clip = _by_hand(IMG, TXT, 3.5, [0, 0, 0, 0])[2]
    assert abs(loss - clip) > 1e-2


def test_reports_only_batch_is_clip_infonce():
    gen = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(6, 8, generator=gen), dim=1)
    txt = F.normalize(torch.randn(6, 8, generator=gen), dim=1)
    scale = torch.tensor(14.3)
    logits = scale * img @ txt.t()
    target = torch.arange(6)
    clip = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    out = unicl_loss(img, txt, scale, torch.zeros(6, dtype=torch.int64))
    assert float(out["loss"]) == pytest.approx(float(clip), rel=1e-6)
    # distinct positive ids are captions too
    out2 = unicl_loss(img, txt, scale, torch.tensor([4, 9, 1, 2, 3, 8]))
    assert float(out2["loss"]) == pytest.approx(float(clip), rel=1e-6)


def test_an_ignored_sample_is_removed_not_a_negative():
    labels = [3, -1, 0, 3]
    i2t, t2i, loss = _by_hand(IMG, TXT, 2.0, labels)
    out = unicl_loss(_t(IMG), _t(TXT), torch.tensor(2.0), torch.tensor(labels))
    assert float(out["loss"]) == pytest.approx(loss, rel=1e-5)
    without = unicl_loss(_t(IMG[[0, 2, 3]]), _t(TXT[[0, 2, 3]]), torch.tensor(2.0), torch.tensor([3, 0, 3]))
    assert float(out["loss"]) == pytest.approx(float(without["loss"]), rel=1e-6)
    # its embeddings get no gradient
    img = _t(IMG).requires_grad_(True)
    unicl_loss(img, _t(TXT), torch.tensor(2.0), torch.tensor(labels))["loss"].backward()
    assert torch.all(img.grad[1] == 0) and torch.all(img.grad[0] != 0)


def test_all_ignored_gives_zero_with_a_graph():
    img = _t(IMG).requires_grad_(True)
    out = unicl_loss(img, _t(TXT), torch.tensor(2.0), torch.full((4,), -1))
    assert float(out["loss"].detach()) == 0.0
    out["loss"].backward()
    assert torch.all(img.grad == 0)


def test_gradients_against_finite_differences():
    labels = torch.tensor([1, 0, 1, 2, -1, 2])
    gen = torch.Generator().manual_seed(1)
    img = torch.randn(6, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    txt = torch.randn(6, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    scale = torch.tensor(2.7, dtype=torch.float64, requires_grad=True)

    def f(a, b, s):
        return unicl_loss(F.normalize(a, dim=1), F.normalize(b, dim=1), s, labels)["loss"]

    assert torch.autograd.gradcheck(f, (img, txt, scale), eps=1e-6, atol=1e-7)
    # and the temperature gradient has the sign it must: a larger T sharpens a batch the embeddings already fit
    fit = F.normalize(torch.eye(4, 5, dtype=torch.float64), dim=1).requires_grad_(False)
    t = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    unicl_loss(fit, fit, t, torch.zeros(4, dtype=torch.int64))["loss"].backward()
    assert float(t.grad) < 0


def test_module_gathers_through_the_function_it_is_given():
    calls = []

    def gather(x):
        calls.append(x.shape)
        return torch.cat([x, x.flip(0)]), 0  # a stand-in "other rank" holding the same rows reversed

    loss = UniCLLoss(gather=gather)
    labels = torch.tensor([0, 1, 1, 0])
    out = loss(_t(IMG), _t(TXT), torch.tensor(2.0), labels)
    both = unicl_loss(torch.cat([_t(IMG), _t(IMG).flip(0)]), torch.cat([_t(TXT), _t(TXT).flip(0)]), torch.tensor(2.0),
                      torch.cat([labels, labels.flip(0)]))
    assert len(calls) == 3 and float(out["loss"]) == pytest.approx(float(both["loss"]), rel=1e-6)


def test_accuracy_monitors():
    eye = torch.eye(3)
    out = unicl_loss(eye, eye, torch.tensor(10.0), torch.zeros(3, dtype=torch.int64))
    assert float(out["i2t_acc"]) == 1.0 and float(out["t2i_acc"]) == 1.0
    out = unicl_loss(eye, eye.roll(1, 0), torch.tensor(10.0), torch.zeros(3, dtype=torch.int64))
    assert float(out["i2t_acc"]) == 0.0
