"""One small demo archive shared by the demo tests (generated once per session, in a temporary directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

N, SEED, SIZE = 60, 0, 256


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory) -> Path:
    from radadapt.demo.archive import generate_archive

    out = tmp_path_factory.mktemp("demo") / "hospital"
    generate_archive(out, n=N, seed=SEED, size=SIZE, workers=2)  # the determinism test reruns with one process
    return out


@pytest.fixture(scope="session")
def truth(demo_out) -> list[dict]:
    with open(demo_out / "ground_truth.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def phi_strings(demo_out) -> dict[str, list[str]]:
    return json.loads((demo_out / "phi.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def cohort():
    """The plan behind ``demo_out`` (planning is cheap and deterministic)."""
    from radadapt.demo.cohort import plan_cohort

    return plan_cohort(N, SEED, SIZE)


def read_dicom(path: Path, bare: bool = False):
    """Read a generated file as ingest would, warnings silenced (some files are broken on purpose)."""
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=bare)
        if bare:
            ds.file_meta = pydicom.dataset.FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        return ds
