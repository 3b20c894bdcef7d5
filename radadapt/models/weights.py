"""Weight files: safetensors only, checked before they are trusted, written atomically.

Reading never falls back to pickle. Before safetensors parses a file, ``read_header`` checks the 8-byte length
prefix, the JSON header and that every tensor's byte range lies inside the file, so a truncated download, a
PyTorch pickle/zip checkpoint renamed ``.safetensors`` or a random file each get their own one-line
``ModelError`` (code ``models.truncated_file`` / ``models.not_safetensors`` / ``models.bad_file``) instead of a
library message. ``check_state_dict`` is the strict key and shape comparison every loader uses: it names the first
missing, unexpected and mis-shaped keys in the file's own naming.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from radadapt import atomic
from radadapt.errors import ModelError

if TYPE_CHECKING:
    import torch

_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The tensor table ``{name: {dtype, shape, data_offsets}}`` and the string metadata of a safetensors file.

    Reads only the header (bytes 8 .. 8+N), so it is cheap on a 350 MB file; raises ``ModelError`` when the file
    is missing, is a pickle/zip checkpoint, has a broken header, or is shorter than its header promises.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError("models.missing_file", f"weight file not found: {p}")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        first = fh.read(1)
        # A safetensors header is JSON, so its first byte is '{'; anything else is identified by its magic.
        if first != b"{":
            if head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"):
                raise ModelError(
                    "models.not_safetensors",
                    f"{p.name} is a PyTorch pickle/zip checkpoint, not safetensors; radadapt never unpickles weights",
                    hint="convert it to safetensors on a trusted machine (safetensors.torch.save_file) and retry",
                )
            if len(head) < 8 or not first:
                raise ModelError("models.truncated_file", f"{p.name} is truncated ({size} bytes); download it again")
            raise ModelError("models.not_safetensors", f"{p.name} is not a safetensors file (no valid header)")
        if n > _MAX_HEADER:
            raise ModelError("models.not_safetensors", f"{p.name} is not a safetensors file (no valid header)")
        if 8 + n > size:
            raise ModelError(
                "models.truncated_file",
                f"{p.name} is truncated: its header alone needs {8 + n} bytes, the file has {size}",
                hint="download or copy the file again (compare its sha256 with pull.json)",
            )
        raw = first + fh.read(n - 1)
    try:
        table = json.loads(raw.decode("utf-8"))
        if not isinstance(table, dict):
            raise ValueError
    except (UnicodeDecodeError, ValueError):
        raise ModelError("models.not_safetensors", f"{p.name} is not a safetensors file (no valid header)") from None
    meta = table.pop("__metadata__", None) or {}
    end = 0
    for name, info in table.items():
        try:
            start, stop = (int(x) for x in info["data_offsets"])
            nbytes = _DTYPE_BYTES[info["dtype"]]
            for d in info["shape"]:
                nbytes *= int(d)
        except (KeyError, TypeError, ValueError):
            raise ModelError("models.bad_file", f"{p.name}: malformed header entry for tensor '{name}'") from None
        if stop - start != nbytes:
            raise ModelError("models.bad_file", f"{p.name}: tensor '{name}' has an inconsistent byte range")
        end = max(end, stop)
    if 8 + n + end > size:
        raise ModelError(
            "models.truncated_file",
            f"{p.name} is truncated: its header promises {8 + n + end} bytes, the file has {size}",
            hint="download or copy the file again (compare its sha256 with pull.json)",
        )
    if 8 + n + end < size:
        raise ModelError("models.bad_file", f"{p.name} has {size - 8 - n - end} trailing bytes after its tensors")
    return table, {str(k): str(v) for k, v in meta.items()}


def header_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` from the header alone (no tensor is read)."""
    table, _ = read_header(path)
    return {k: tuple(int(d) for d in v["shape"]) for k, v in table.items()}


def load_file(path: str | os.PathLike) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
    """All tensors of a checked safetensors file (on CPU) and its metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file as _load

    _, meta = read_header(path)
    try:
        return _load(str(path), device="cpu"), meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            "models.bad_file", f"{Path(path).name} could not be read as safetensors ({type(exc).__name__})"
        ) from None


_TORCH_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                 "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def save_file(path: str | os.PathLike, tensors: Mapping[str, "torch.Tensor"], metadata: Mapping[str, str] | None = None) -> None:
    """Write tensors in the safetensors format, atomically and byte-for-byte reproducibly.

    The library's writer orders its metadata map arbitrarily between processes, so equal weights could give
    different sha256s; here the header is JSON with sorted keys (metadata always includes ``format: pt``, which
    transformers expects), tensors follow in name order, and the header is space-padded to 8 bytes as the
    format specifies. Tensors are streamed one by one (bounded extra memory).
    """
    import torch

    names = sorted(tensors)
    header: dict[str, Any] = {"__metadata__": {"format": "pt", **{str(k): str(v) for k, v in (metadata or {}).items()}}}
    offset = 0
    for name in names:
        t = tensors[name]
        dtype = _TORCH_DTYPES.get(str(t.dtype).removeprefix("torch."))
        if dtype is None:
            raise ModelError("models.bad_file", f"cannot store tensor '{name}' of dtype {t.dtype} in safetensors")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with atomic.atomic_open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for name in names:
            t = tensors[name].detach().to("cpu").contiguous().reshape(-1)
            fh.write(t.view(torch.uint8).numpy().tobytes())  # safetensors is little-endian, as are x86/ARM hosts


def shapes(state_dict: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(int(d) for d in v.shape) for k, v in state_dict.items()}


def _first(names: Iterable[str], n: int = 3) -> str:
    names = sorted(names)
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], *, what: str, hint: str | None = None
) -> None:
    """Raise ``models.key_mismatch`` unless ``found`` has exactly the keys and shapes of ``expected``.

    The message names the first missing keys, unexpected keys and shape mismatches, in the naming of ``what``
    (e.g. ``backbone_compatible.safetensors``), so the user sees the names that are in their file.
    """
    missing = set(expected) - set(found)
    unexpected = set(found) - set(expected)
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    if wrong:
        k = wrong[0]
        more = f" (+{len(wrong) - 1} more)" if len(wrong) > 1 else ""
        parts.append(
            f"{len(wrong)} with the wrong shape ({k}: file {tuple(found[k])}, model {tuple(expected[k])}{more})"
        )
    raise ModelError("models.key_mismatch", f"{what} does not match the model: " + "; ".join(parts), hint=hint)
