"""Each loss against values computed by hand (plain Python/NumPy, written from the papers) on tiny inputs."""

import math

import numpy as np
import pytest
import torch

from radadapt.train.losses.dino import DINOLoss, sinkhorn_knopp
from radadapt.train.losses.ibot import iBOTPatchLoss, mask_weights
from radadapt.train.losses.koleo import KoLeoLoss


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_dino_cross_entropy_with_centring_by_hand():
    loss = DINOLoss(3, student_temp=0.1, center_momentum=0.9)
    loss.center.copy_(torch.tensor([[0.1, -0.2, 0.05]]))
    teacher = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    student = torch.tensor([[0.2, 0.1, 0.0], [-0.3, 0.4, 0.1]])
    probs = loss.teacher_probs(teacher, teacher_temp=0.04)
    c = np.array([0.1, -0.2, 0.05])
    by_hand_probs = [_softmax((np.array(t) - c) / 0.04) for t in teacher.tolist()]
    np.testing.assert_allclose(probs.numpy(), np.stack(by_hand_probs), rtol=1e-5, atol=1e-7)
    ce = [-(p * np.log(_softmax(np.array(s) / 0.1))).sum() for p, s in zip(by_hand_probs, student.tolist())]
    assert float(loss([student], [probs])) == pytest.approx(np.mean(ce), rel=1e-5)
    # two chunks each: the sum over every (student, teacher) pair of the batch-mean CE
    two = float(loss([student, student], [probs, probs]))
    assert two == pytest.approx(4 * np.mean(ce), rel=1e-5)


def test_dino_centre_moves_once_per_step_by_the_mean_teacher_output():
    loss = DINOLoss(2, center_momentum=0.9)
    a, b = torch.tensor([[1.0, 3.0]]), torch.tensor([[3.0, 5.0], [2.0, 1.0]])
    loss.teacher_probs(a, 0.1)  # micro-batch 1
    loss.teacher_probs(b, 0.1)  # micro-batch 2: still centred with the old (zero) centre
    assert torch.equal(loss.center, torch.zeros(1, 2))
    loss.update_center()
    mean = np.array([[6.0, 9.0]]) / 3  # the mean over all 3 rows of the step, not the mean of the two means
    np.testing.assert_allclose(loss.center.numpy(), 0.1 * mean, rtol=1e-6)
    assert float(loss._count) == 0  # statistics reset for the next step
    assert "center" in loss.state_dict() and "_sum" not in loss.state_dict()


def test_sinkhorn_knopp_on_a_2x3_example_by_hand():
    logits = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.5, -1.0]])  # 2 samples, 3 prototypes
    temp, iters = 0.5, 3
    q = np.exp(logits.numpy().astype(np.float64) / temp).T  # K x B
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(axis=1, keepdims=True)
        q /= 3
        q /= q.sum(axis=0, keepdims=True)
        q /= 2
    q *= 2
    out = sinkhorn_knopp(logits, temp, iters)
    np.testing.assert_allclose(out.numpy(), q.T, rtol=1e-5)
    np.testing.assert_allclose(out.sum(1).numpy(), [1.0, 1.0], rtol=1e-6)  # each sample: a distribution
    # prototypes end up about equally used (B/K = 2/3 each) after 3 iterations, much more than the softmax
    balance = lambda p: np.abs(p.sum(0) - 2 / 3).max()  # noqa: E731
    softmax = torch.softmax(logits / temp, -1).numpy()
    assert balance(out.numpy()) < 0.1 < balance(softmax)


def test_ibot_averages_masked_tokens_per_image_then_over_all_global_crops():
    k = 4
    loss = iBOTPatchLoss(k, student_temp=0.1)
    masks = torch.tensor([[True, True, False], [False, False, False], [False, True, False]])  # 3 crops, 3 patches
    rng = np.random.default_rng(0)
    s = torch.tensor(rng.normal(size=(3, k)), dtype=torch.float32)  # the 3 masked tokens, masks[masks] order
    t = torch.softmax(torch.tensor(rng.normal(size=(3, k)), dtype=torch.float32), -1)
    ce = [-(t[i].numpy() * np.log(_softmax(s[i].numpy() / 0.1))).sum() for i in range(3)]
    # image 0: two masked tokens (weight 1/2 each); image 1: none, yet it counts in the mean; image 2: one
    by_hand = ((ce[0] + ce[1]) / 2 + 0 + ce[2]) / 3
    assert float(loss(s, t, masks)) == pytest.approx(by_hand, rel=1e-5)
    np.testing.assert_allclose(mask_weights(masks).numpy(), [0.5, 0.5, 1.0])


def test_ibot_centre_is_the_mean_over_masked_tokens():
    loss = iBOTPatchLoss(2, center_momentum=0.5)
    loss.teacher_probs(torch.tensor([[2.0, 0.0], [4.0, 2.0]]), 0.1)
    loss.update_center()
    np.testing.assert_allclose(loss.center.numpy(), [[1.5, 0.5]])


def test_koleo_on_three_collinear_points_by_hand():
    # Points on the line x = 1: after L2 normalisation they sit at angles 0, 45 and 63.43 degrees.
    pts = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    unit = pts.numpy() / np.linalg.norm(pts.numpy(), axis=1, keepdims=True)
    d = lambda i, j: np.linalg.norm(unit[i] - unit[j])  # noqa: E731
    nearest = [min(d(0, 1), d(0, 2)), min(d(1, 0), d(1, 2)), min(d(2, 0), d(2, 1))]
    assert nearest == pytest.approx([d(0, 1), d(1, 2), d(2, 1)])  # 0 -> 1, 1 -> 2, 2 -> 1
    by_hand = -np.mean(np.log(nearest))
    assert float(KoLeoLoss()(pts)) == pytest.approx(by_hand, rel=1e-5)
    # chord lengths from the angles: 2 sin(22.5 deg) and 2 sin(9.22 deg)
    assert d(0, 1) == pytest.approx(2 * math.sin(math.radians(22.5)), rel=1e-6)


def test_koleo_single_image_and_duplicates_stay_finite():
    assert float(KoLeoLoss()(torch.ones(1, 4))) == 0.0
    dup = KoLeoLoss()(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    assert torch.isfinite(dup)


def _numeric_grad(fn, x, eps=1e-3):
    num = torch.zeros_like(x)
    for i in range(x.numel()):
        d = torch.zeros(x.numel(), dtype=x.dtype)
        d[i] = eps
        d = d.view_as(x)
        num.view(-1)[i] = (fn(x + d) - fn(x - d)) / (2 * eps)
    return num


@pytest.mark.parametrize("which", ["dino", "ibot", "koleo"])
def test_gradients_match_finite_differences(which):
    # The losses compute in float32 by design, so the check uses float64 inputs and a float32-sized step.
    torch.manual_seed(0)
    t = torch.softmax(torch.randn(3, 5), -1)
    masks = torch.tensor([[True, False, True], [False, True, False]])
    fn = {
        "dino": lambda s: DINOLoss(5)([s], [t]).double(),
        "ibot": lambda s: iBOTPatchLoss(5)(s, t, masks).double(),
        "koleo": lambda s: KoLeoLoss()(s[:, :3]).double(),
    }[which]
    x = torch.randn(3, 5, dtype=torch.float64)
    xf = x.detach().float().requires_grad_(True)
    fn(xf).backward()
    num = _numeric_grad(lambda v: fn(v.float()), x.detach())
    torch.testing.assert_close(xf.grad.double(), num, rtol=2e-2, atol=2e-3)
