import numpy as np
import pytest
import torch
from conftest import phantom

from radadapt.train.augment import (
    CropSpec,
    IntensitySpec,
    MultiCrop,
    adjust_contrast,
    gaussian_blur,
    resized_crop_box,
)


def test_multicrop_shapes_dtypes_and_determinism():
    mc = MultiCrop(CropSpec(2, 56, (0.32, 1.0)), CropSpec(4, 28, (0.05, 0.32)))
    img = phantom(np.random.default_rng(0), 80)
    a = mc(img, np.random.default_rng(7))
    b = mc(img, np.random.default_rng(7))
    assert a["global"].shape == (2, 1, 56, 56) and a["local"].shape == (4, 1, 28, 28)
    assert a["global"].dtype == torch.uint8
    assert torch.equal(a["global"], b["global"]) and torch.equal(a["local"], b["local"])
    c = mc(img, np.random.default_rng(8))
    assert not torch.equal(a["global"], c["global"])


def test_no_flip_by_default_laterality_is_kept():
    # A full-image "crop" with no intensity change must keep the bright side on the left.
    img = np.zeros((56, 56), np.uint8)
    img[:, :20] = 250
    mc = MultiCrop(CropSpec(2, 56, (1.0, 1.0)), CropSpec(0, 28, (0.05, 0.32)),
                   IntensitySpec(jitter_p=0.0, blur_global=(0.0,), blur_local=0.0))
    for seed in range(10):
        out = mc(img, np.random.default_rng(seed))["global"].float()
        assert (out[..., :, :20].mean() > out[..., :, 36:].mean()).item()
    flipping = MultiCrop(CropSpec(2, 56, (1.0, 1.0)), CropSpec(0, 28, (0.05, 0.32)),
                         IntensitySpec(hflip=1.0, jitter_p=0.0, blur_global=(0.0,), blur_local=0.0))
    out = flipping(img, np.random.default_rng(0))["global"].float()
    assert (out[..., :, :20].mean() < out[..., :, 36:].mean()).item()


def test_blur_and_contrast_equal_torchvision():
    from torchvision.transforms.v2 import functional as TF

    x = phantom(np.random.default_rng(1), 64)
    ours = np.clip(np.rint(gaussian_blur(x.astype(np.float32), 1.3, 9)), 0, 255)
    ref = TF.gaussian_blur(torch.from_numpy(x)[None], [9, 9], [1.3, 1.3])[0].numpy()
    assert np.abs(ours - ref).max() <= 1
    ours_c = adjust_contrast(x.astype(np.float32), 1.3)
    ref_c = TF.adjust_contrast(torch.from_numpy(x)[None].float() / 255, 1.3)[0].numpy() * 255
    np.testing.assert_allclose(ours_c, ref_c, atol=1e-3)


def test_jitter_lookup_table_equals_the_operations_applied_in_turn():
    mc = MultiCrop(CropSpec(1, 28, (1.0, 1.0)), CropSpec(0, 28, (1.0, 1.0)))
    crop = phantom(np.random.default_rng(2), 40)
    lut = mc._jitter_lut(crop, np.random.default_rng(3))
    # replay the same draws with direct pixel operations
    rng = np.random.default_rng(3)
    x = crop.astype(np.float64)
    for op in rng.permutation(3):
        if op == 0:
            x = np.clip(x * rng.uniform(0.6, 1.4), 0, 255)
        elif op == 1:
            f = rng.uniform(0.6, 1.4)
            x = np.clip(x.mean() + (x - x.mean()) * f, 0, 255)
        else:
            x = 255 * (x / 255) ** np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    np.testing.assert_allclose(lut[crop], x, atol=1e-3)


@pytest.mark.parametrize("shape", [(100, 100), (40, 200), (200, 30)])
def test_resized_crop_box_stays_inside_the_image(shape):
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = resized_crop_box(rng, *shape, (0.05, 1.0))
        assert 0 <= top and 0 <= left and top + h <= shape[0] and left + w <= shape[1] and h > 0 and w > 0
