"""Small DICOM files made in the tests: phantom radiographs with chosen tags, pixel modules and encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROC = "1.2.840.10008.5.1.4.1.1.1.1.1"
SC = "1.2.840.10008.5.1.4.1.1.7"
SR = "1.2.840.10008.5.1.4.1.1.88.22"
CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def chest_phantom(rows: int = 160, cols: int = 128, bits: int = 12, seed: int = 0) -> np.ndarray:
    """Display-polarity (air dark) chest-like image in [0, 2**bits): body, two lungs, mediastinum, ribs, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    yn, xn = y / rows, x / cols
    img = np.full((rows, cols), 0.08)
    body = ((xn - 0.5) / 0.46) ** 2 + ((yn - 0.55) / 0.55) ** 2 < 1
    img[body] = 0.62
    for cx in (0.3, 0.7):
        lung = ((xn - cx) / 0.15) ** 2 + ((yn - 0.42) / 0.27) ** 2 < 1
        img[lung] = 0.25 + 0.05 * np.sin(yn[lung] * 60)  # ribs
    media = (np.abs(xn - 0.5) < 0.07) & (yn > 0.15) & (yn < 0.8)
    img[media] = 0.75
    img[yn > 0.78] = np.maximum(img[yn > 0.78], 0.7 * body[yn > 0.78])
    img += rng.normal(0, 0.01, img.shape)
    return np.clip(img * (2**bits - 1), 0, 2**bits - 1).astype(np.uint16)


def limb_phantom(rows: int = 160, cols: int = 128, bits: int = 12, seed: int = 0) -> np.ndarray:
    """A long bone in soft tissue on air, edge to edge (a tibia-like AP view)."""
    rng = np.random.default_rng(seed)
    x = np.arange(cols) / cols
    img = np.full((rows, cols), 0.05)
    img[:, (x > 0.3) & (x < 0.7)] = 0.45
    img[:, (x > 0.42) & (x < 0.58)] = 0.9
    img = img + rng.normal(0, 0.01, img.shape)
    return np.clip(img * (2**bits - 1), 0, 2**bits - 1).astype(np.uint16)


def pelvis_phantom(rows: int = 128, cols: int = 160, bits: int = 12, seed: int = 0) -> np.ndarray:
    """Soft-tissue body, a bright bony ring with two small holes (obturator foramina), air at the sides."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    yn, xn = y / rows, x / cols
    img = np.full((rows, cols), 0.05)
    img[((xn - 0.5) / 0.48) ** 2 + ((yn - 0.5) / 0.7) ** 2 < 1] = 0.5
    ring = np.abs(np.hypot((xn - 0.5) / 0.35, (yn - 0.45) / 0.4) - 1) < 0.15
    img[ring] = 0.85
    for cx in (0.38, 0.62):
        img[np.hypot((xn - cx) / 0.05, (yn - 0.75) / 0.06) < 1] = 0.2
    img += rng.normal(0, 0.01, img.shape)
    return np.clip(img * (2**bits - 1), 0, 2**bits - 1).astype(np.uint16)


def make_dataset(pixels: np.ndarray | None = None, *, sop_class: str = CR, modality: str = "CR",
                 uid: str = "1.2.826.0.1.3680043.8.498.1", patient_id: str = "PID001", name: str = "DOE^JOHN",
                 accession: str = "ACC001", bits_stored: int = 12, photometric: str = "MONOCHROME2",
                 body_part: str | None = "CHEST", view: str | None = "PA", signed: bool = False, **extra):
    """A complete single-frame dataset (file meta included, explicit VR little endian)."""
    from pydicom.dataset import FileDataset, FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = EXPLICIT
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = uid + ".1"
    ds.SeriesInstanceUID = uid + ".2"
    ds.Modality = modality
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19600304"
    ds.PatientSex = "F"
    ds.StudyDate = "20210305"
    ds.AccessionNumber = accession
    ds.InstitutionName = "Springfield General Hospital"
    ds.Manufacturer = "ACME Imaging"
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if view is not None:
        ds.ViewPosition = view
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16 if pixels.dtype.itemsize == 2 else 8
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        ds.PixelSpacing = [0.2, 0.2]
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def write(ds, path: Path, transfer_syntax: str = EXPLICIT) -> Path:
    """Save ``ds`` in ``transfer_syntax`` (compressing the pixel data where needed)."""
    from pydicom.uid import UID

    path.parent.mkdir(parents=True, exist_ok=True)
    ts = UID(transfer_syntax)
    ds = ds.copy()
    if ts.is_compressed:
        ds.compress(ts, encoding_plugin="" if ts != "1.2.840.10008.1.2.5" else "pydicom")
    else:
        ds.file_meta.TransferSyntaxUID = ts
    ds.save_as(path, enforce_file_format=True)
    return path
