"""Frozen backbone features on disk: extract once per video, train many heads (the classic pipeline, as an option).

`run_grounding.py --features_dir DIR` keeps the video-states cache (`feature_cache.VideoStatesCache`) of a model
whose `encode_video` is frozen (`--backbone_tuning frozen`: every block; `scada`: the blocks below the first adapter)
in DIR, so later runs on the same videos with the same frozen backbone and frame sampling read it instead of decoding
and encoding again. Features are not pooled: the head's sentence-weighted spatial pooling reads the tokens.

Layout: DIR/<fingerprint>/ holds `features.json` (what the fingerprint covers, for people) and shards
`shard-*.safetensors`, one tensor per video named by its key. The fingerprint hashes everything that makes the
features what they are: the frozen weights (embeddings, the frozen blocks, the final layernorm when it is frozen too),
how many blocks run, the frame count and size, the processor's resizing and normalisation, the frame spacing
(uniform, or jittered with its seed and variant) and the storage dtype. A video's key is its id with its file's size
and modification time, so a replaced file is extracted again, not read stale. A run adds one new shard (written
atomically) for the videos it extracted; readers only ever see complete shards, so runs may share DIR. Videos that
fail to decode are not stored (they fail again, and are reported again, next time).

Why by hand: `datasets` can cache a `map` of the frames to features, but its fingerprint covers the function's code
and arguments, not the weights inside a module, and it writes every row again when the dataset changes; here a new
split or a few new videos extract only what is missing.
"""

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .files import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)


def frozen_modules(model) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of what `encode_video` runs once per video (`TSGVVideoBackbone.shared_modules`): the
    embeddings, the blocks up to the first adapter (all without adapters) and, without adapters, the final
    layernorm."""
    return model.backbone.shared_modules()


def weights_digest(model) -> str:
    """sha256 (hex) of the frozen modules' parameters and buffers (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, module in frozen_modules(model):
        for key, tensor in sorted({**dict(module.named_parameters()), **dict(module.named_buffers())}.items()):
            data = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}.{key}:{data.dtype}:{tuple(data.shape)}".encode())
            digest.update(data.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def features_description(model, video_processor, spacing: str, seed: int, variant: int, dtype) -> dict:
    """What makes one set of features: frozen weights, blocks run, frames and their processing, the frame sampling
    (`spacing` "uniform", or "random" with `seed` and jitter `variant`) and the storage `dtype`."""
    first = model.backbone.first_query_block
    config = model.config
    return {
        "backbone_sha256": weights_digest(model),
        "frozen": [name for name, _ in frozen_modules(model)],
        "states_after": "all blocks and the final layernorm" if first is None else f"block {first}",
        "num_frames": config.num_frames,
        "clip_frames": config.clip_frames,
        "image_size": config.image_size,
        "video_processor": json.loads(video_processor.to_json_string()),
        "spacing": spacing,
        "seed": seed if spacing == "random" else None,
        "variant": variant if spacing == "random" else 0,
        "dtype": str(dtype).removeprefix("torch."),
    }


def video_key(video_id: str, video_path: str | None) -> str | None:
    """`<video_id>|<bytes>|<mtime ns>` of the video file, or None when it cannot be read (such a video is not
    stored)."""
    try:
        stat = os.stat(video_path)
    except (OSError, TypeError):
        return None
    return f"{video_id}|{stat.st_size}|{stat.st_mtime_ns}"


class FeatureStore:
    """A folder of saved frozen-backbone features (see the module docstring).

    Args:
        folder: the store's root (created when needed).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.read_videos, self.extracted_videos = 0, 0  # over this object's lifetime

    def section(self, description: dict) -> Path:
        """The sub-folder of features matching `description` (created, with `features.json`, if new)."""
        text = json.dumps(description, sort_keys=True)
        section = self.folder / hashlib.sha256(text.encode()).hexdigest()[:20]
        if not (section / "features.json").exists():
            section.mkdir(parents=True, exist_ok=True)
            write_text_atomic(str(section / "features.json"), json.dumps(description, indent=1, sort_keys=True))
        return section

    @staticmethod
    def stored(section: Path) -> dict[str, Path]:
        """Key -> shard file of every video stored in `section` (the shards' headers only are read)."""
        where = {}
        for shard in sorted(section.glob("shard-*.safetensors")):
            with safe_open(shard, framework="pt") as f:
                where.update((key, shard) for key in f.keys())  # noqa: SIM118 (safe_open is not iterable)
        return where

    def load_or_extract(
        self,
        section: Path,
        keys: list[str | None],
        extract: Callable[[list[int]], torch.Tensor],
        failed: Callable[[int], bool],
    ) -> torch.Tensor:
        """The features of every row, (num_rows, ...): read from `section` where stored, else `extract(indices)`
        ((len(indices), ...) for those rows) and stored, except rows for which `failed(index)` is true after the
        extraction (decode failures) or whose key is None."""
        where = self.stored(section)
        missing = [i for i, key in enumerate(keys) if key is None or key not in where]
        extracted = extract(missing) if missing else None
        new = {keys[i]: extracted[n].contiguous() for n, i in enumerate(missing) if keys[i] and not failed(i)}
        if new:
            shard = section / f"shard-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(where)}.safetensors"
            with atomic_path(str(shard)) as tmp:
                save_file(new, tmp)
        positions = {i: n for n, i in enumerate(missing)}
        handles, out = {}, None  # one open (memory-mapped) safetensors file per shard; rows copied straight into `out`
        for i, key in enumerate(keys):
            if i in positions:
                row = extracted[positions[i]]
            else:
                if where[key] not in handles:
                    handles[where[key]] = safe_open(where[key], framework="pt")
                row = handles[where[key]].get_tensor(key)
            if out is None:
                out = torch.empty((len(keys), *row.shape), dtype=row.dtype)
            out[i] = row
        self.read_videos += len(keys) - len(missing)
        self.extracted_videos += len(missing)
        logger.info(f"features in {section}: {len(keys) - len(missing):,d} videos read, {len(missing):,d} extracted")
        return out


def features_dir_problem(data_args, backbone_trains: bool | None) -> str | None:
    """Why `--features_dir` cannot work with these data arguments (None: it can): the store keeps frozen backbone
    states per video, so it needs a frozen `encode_video` (`backbone_trains`: the blocks it runs train, as under
    `--backbone_tuning` full / partial; None while the model is not built yet), video-centric batches and video-state
    caching. The one rule, checked while the arguments are parsed and again once the model is built (a saved model
    brings its own tuning mode)."""
    if not data_args.features_dir:
        return None
    if os.path.exists(data_args.features_dir) and not os.path.isdir(data_args.features_dir):
        return f"--features_dir {data_args.features_dir} is a file, not a folder"
    if backbone_trains or data_args.cache_video_states == "no" or data_args.sampling == "query_centric":
        return (
            f"--features_dir {data_args.features_dir} keeps frozen backbone states per video: it needs "
            "--backbone_tuning frozen or scada, video-centric batches and video-state caching (not "
            "--cache_video_states no)"
        )
    return None


__all__ = [
    "features_dir_problem",
    "FeatureStore",
    "features_description",
    "video_key",
    "weights_digest",
    "frozen_modules",
]
