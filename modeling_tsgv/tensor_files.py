"""The one format tsgv keeps tensors in on disk: safetensors, read lazily through `safe_open` (the in-run video-state
cache, the feature store, stage 1's frame cache). Its own module, not `files.py`: the console scripts import
`files` and must answer their arguments before torch loads."""

import json
import math
import os
import struct

import numpy as np
import torch
from safetensors import safe_open

# safetensors' names of the dtypes tsgv stores
SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.uint8: "U8", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.bool: "BOOL",
}  # fmt: skip


def allocate_safetensors(path, specs: dict, metadata: dict | None = None) -> dict[str, int]:
    """Create `path` as a safetensors file of zero-filled tensors, `specs` {name: (torch dtype, shape)}, without
    writing their bytes (the file is extended, sparse), so that they can be filled in place, row by row
    (`writable_tensor`), and read lazily with `safe_open` (`read_safetensors`). `metadata`: str -> str, kept in the
    header. Returns each tensor's byte offset in the file.

    Written by hand (the format is an 8-byte little-endian header length, a JSON header, the raw bytes) because
    safetensors writes only tensors that are whole in memory, and stage 1's frame cache is filled row by row as
    worker processes decode the videos, larger than memory if need be; tensors that are whole go through
    safetensors' own `save_file`."""
    header, offset = {}, 0
    for name, (dtype, shape) in specs.items():
        nbytes = math.prod(shape) * dtype.itemsize
        entry = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        header[name], offset = entry, offset + nbytes
    if metadata:
        header["__metadata__"] = {str(key): str(value) for key, value in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data start 8-byte aligned, as safetensors writes them
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)
    start = 8 + len(text)
    return {name: start + header[name]["data_offsets"][0] for name in specs}


def writable_tensor(path, offset: int, dtype: torch.dtype, shape: tuple) -> torch.Tensor:
    """A tensor of an `allocate_safetensors` file at `offset`, memory-mapped for writing in place."""
    raw = np.memmap(path, dtype=np.uint8, mode="r+", offset=offset, shape=(math.prod(shape) * dtype.itemsize,))
    return torch.from_numpy(raw).view(dtype).view(shape)


def read_safetensors(path) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors file `path`, through `safe_open`: memory-mapped, not read (pages come in as
    they are used, and the machine's page cache holds one copy for every process that reads the file)."""
    with safe_open(os.fspath(path), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not iterable)


__all__ = ["allocate_safetensors", "writable_tensor", "read_safetensors"]
