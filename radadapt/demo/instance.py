"""One planned image made real: phantom pixels, stored values, header, masks (shared by archive and mess)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from radadapt.demo import phi
from radadapt.demo.cohort import Image
from radadapt.demo.pixelmodule import PixelResult, encode_pixels


@dataclass
class Instance:
    image: Image
    dataset: Any  # pydicom Dataset: header and pixel description, PixelData not yet set
    pixels: PixelResult
    display: np.ndarray  # the phantom in display space, [0, 1]
    masks: dict[str, np.ndarray]
    geometry: dict


def build_instance(img: Image, reg: phi.PhiRegistry, *, pixel_case: str | None = None) -> Instance:
    """Render ``img`` from its own seed (so a re-render gives identical pixels) and assemble its dataset."""
    from radadapt.demo.bodyparts import render_body_part
    from radadapt.demo.dicomgen import header
    from radadapt.demo.phantom import render_chest

    rng = np.random.default_rng(img.seed)
    if img.kind == "chest":
        display, masks, geo = render_chest(img.shape, img.view, img.study.state, rng)
    else:
        display, masks, geo = render_body_part(img.kind, img.shape, rng), {}, {}
    case = pixel_case or img.pixel_case
    px = encode_pixels(display, case, rng, bits=img.bits, mono1=img.mono1, modality=img.study.modality)
    ds = header(img, reg)
    set_pixel_tags(ds, px.tags)
    return Instance(img, ds, px, display, masks, geo)


def set_pixel_tags(ds: Any, tags: dict) -> None:
    """Copy Image Pixel / LUT tags onto ``ds``; LUT Data is written as OW (PS3.3 C.11.1.1)."""
    from pydicom.dataset import Dataset

    for key, value in tags.items():
        if key in ("ModalityLUTSequence", "VOILUTSequence"):
            items = []
            for spec in value:
                item = Dataset()
                for k, v in spec.items():
                    if k == "LUTData":
                        item.add_new(0x00283006, "OW", np.asarray(v, dtype="<u2").tobytes())
                    else:
                        setattr(item, k, v)
                items.append(item)
            setattr(ds, key, items)
        elif key == "PixelPaddingValue":
            ds.add_new(0x00280120, "US", int(value))
        else:
            setattr(ds, key, value)
