import json

import pytest
import torch

from radadapt.errors import DataError
from radadapt.train import checkpoint as ckpt


def _save(root, step, value, keep=2):
    tmp = ckpt.begin(root, step)
    ckpt.write_tensors(tmp, "model.safetensors", {"w": torch.full((3,), float(value))})
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))])
    ckpt.write_torch(tmp, "optimizer.pt", {"optimizer": opt.state_dict(), "scaler": {}})
    return ckpt.finish(root, tmp, step, {"note": "x"}, keep=keep)


def test_latest_names_the_newest_complete_checkpoint_and_old_ones_are_pruned(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        _save(root, step, step)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step_00000020", "step_00000030"]
    found = ckpt.latest(root)
    assert found.step == 30 and found.state["note"] == "x"
    assert float(ckpt.read_tensors(found.path, "model.safetensors")["w"][0]) == 30.0
    assert "optimizer" in ckpt.read_torch(found.path, "optimizer.pt")


def test_a_half_written_checkpoint_is_invisible_and_cleaned_up(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 10, 1)
    tmp = ckpt.begin(root, 20)  # killed while writing step 20
    ckpt.write_tensors(tmp, "model.safetensors", {"w": torch.zeros(3)})
    assert ckpt.latest(root).step == 10
    _save(root, 30, 3)
    assert not list(root.glob(".tmp-*"))


def test_damaged_or_pickled_files_are_refused(tmp_path):
    root = tmp_path / "checkpoints"
    folder = _save(root, 5, 1)
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError) as info:
        ckpt.read_tensors(folder, "model.safetensors")
    assert info.value.code == "train.bad_checkpoint"

    class Evil:
        def __reduce__(self):
            return (print, ("this would run on load",))

    with open(folder / "optimizer.pt", "wb") as fh:
        torch.save({"x": Evil()}, fh)
    with pytest.raises(DataError):
        ckpt.read_torch(folder, "optimizer.pt")
    (folder / "state.json").write_text("{")
    with pytest.raises(DataError):
        ckpt.latest(root)
    (root / "latest.json").write_text(json.dumps({"step": 5, "dir": "step_00000005"}))
    assert ckpt.read_latest_name(root) == "step_00000005"
