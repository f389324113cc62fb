"""Cache of the query-independent backbone states for training: decode and encode each video once, not every epoch.

Under `backbone_tuning="scada"` (and `"frozen"`) the blocks up to the first adapter are frozen, so
`TSGVForGrounding.encode_video` is a fixed function of the frames. With frames sampled the same way, its output can be
computed once per video and reused by every epoch: a training step then costs only the per-query part (adapters,
blocks above them, pooling, head) — no decoding, no shared blocks. Kept in float32 (`dtype=torch.float32`, what
`run_grounding.py` uses for evaluation) a step on cached states gives the same loss and gradients as a step on the
frames they came from. `run_grounding.py` keeps the training states in bfloat16 (half the memory): a step then differs
from the float32 one by bfloat16's rounding of the states (tests/test_feature_cache.py bounds it: loss within 1 %,
gradients at cosine >= 0.99).

Frame jitter (random sampling within each of the T segments) is kept by caching `variants` jittered samplings per
training video; each epoch picks one per video, seeded by (seed, epoch, video), so a resumed run sees the same ones.
Evaluation splits get one variant, sampled uniformly (segment centres), as `FrameTransform` does.

When the embeddings train too (`backbone_tuning="full"`, or `"partial"` reaching the bottom), nothing of the backbone
is fixed; the cache then keeps the decoded, resized and normalised frames (`pixel_values`) instead, which still saves
the decoding of every epoch (on a small dataset at a small resolution, decoding is most of a full-tuning step).

Memory: videos x variants x C x N x D values (states) or T x 3 x H x W values (frames) of the storage dtype
(`estimate_bytes`). With several processes on a machine, each encodes its share of the videos on its own accelerator
and saves its part (`save`); every process maps all parts (`load`, shared memory-mapped storage; `CacheParts`), so a
machine holds one copy, not one per process.
"""

import atexit
import json
import logging
import os
import shutil
import socket
import time

import torch
from accelerate import PartialState
from safetensors.torch import save_file

from .argparsing import ArgumentError
from .data import FrameTransform, item_rng
from .feature_store import FeatureStore, features_description, features_dir_problem, video_key
from .files import write_text_atomic
from .tensor_files import read_safetensors
from .text_states import SentenceStates

logger = logging.getLogger(__name__)


def estimate_bytes(config, num_videos: int, variants: int = 1, dtype=torch.bfloat16, frames: bool = False) -> int:
    """Bytes a cache of `num_videos` x `variants` encode_video states (or, `frames=True`, pixel_values) of a model
    with `config` takes."""
    values = 1
    for size in row_shape(config, frames):
        values *= size
    return num_videos * variants * values * torch.empty((), dtype=dtype).element_size()


def row_shape(config, frames: bool = False) -> tuple[int, ...]:
    """Shape of one video's cached entry: encode_video states (C, N, D), or with `frames` its pixel_values
    (T, 3, H, W)."""
    if frames:
        return (config.num_frames, 3, config.image_size, config.image_size)
    clips = config.num_frames // config.clip_frames
    tokens = (config.clip_frames // config.backbone_config.tubelet_size) * (
        config.image_size // config.backbone_config.patch_size
    ) ** 2
    return (clips, tokens, config.backbone_config.hidden_size)


def can_cache(model) -> bool:
    """Whether `encode_video` is frozen for `model`: no trainable parameter in what it runs once per video
    (`TSGVVideoBackbone.shared_modules`: the embeddings and the blocks up to the first adapter, all without one)."""
    return not any(p.requires_grad for _, module in model.backbone.shared_modules() for p in module.parameters())


@torch.no_grad()
def _encode_all(model, loader, field: str, dtype, failed: dict) -> torch.Tensor:
    """Every batch of `loader` ((pixel_values, [(video_id, decode error)])) as `field` in `dtype` on the CPU:
    `model.encode_video` states (B_v, C, N, D) or the frames themselves (B_v, T, 3, H, W), concatenated over the
    batches. Decode errors go into `failed` (video_id -> error)."""
    device, model_dtype = next(model.parameters()).device, next(model.parameters()).dtype
    chunks = []
    for pixel_values, errors in loader:
        failed.update((video_id, error) for video_id, error in errors if error)
        if field == "pixel_values":
            chunks.append(pixel_values.to("cpu", dtype))
            continue
        encoded = model.encode_video(pixel_values.to(device, model_dtype))
        hidden = encoded.hidden_states.view(encoded.num_videos, encoded.clips, *encoded.hidden_states.shape[1:])
        chunks.append(hidden.to("cpu", dtype))
    if not chunks:  # no rows (a process's share of a tiny split)
        return torch.empty((0, *row_shape(model.config, field == "pixel_values")), dtype=dtype)
    return torch.cat(chunks)


def _frames_loader(rows, batch_size: int, num_workers: int) -> torch.utils.data.DataLoader:
    """DataLoader of `rows` (a dataset whose transform decodes `pixel_values`) giving ((B_v, T, 3, H, W) frames,
    [(video_id, decode error)])."""
    return torch.utils.data.DataLoader(
        rows,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=lambda batch: (
            torch.stack([torch.as_tensor(r["pixel_values"]) for r in batch]),
            [(str(r["video_id"]), r["decode_error"]) for r in batch],
        ),
    )


def _variant_states(model, base, transform, field, dtype, failed: dict, loading, store, variant) -> torch.Tensor:
    """One frame sampling (`transform`, jitter `variant`) of every row of `base`: its `field` in `dtype`, encoded
    (`loading`: (batch_size, num_workers)) or, for states with a `store`, read from it where it has them (and the
    rest saved there). Decode failures go into `failed`."""

    def extract(indices=None):  # rows `indices` (all when None) -> their states or frames
        rows = base if indices is None else base.select(indices)
        return _encode_all(model, _frames_loader(rows.with_transform(transform), *loading), field, dtype, failed)

    if store is None or field != "video_states" or len(base) == 0:
        return extract()
    description = features_description(
        model, transform.video_processor, transform.spacing, transform.seed, variant, dtype
    )
    row_keys = [video_key(str(row["video_id"]), row.get("video_path")) for row in base]
    video_ids = base["video_id"]
    return store.load_or_extract(store.section(description), row_keys, extract, lambda i: str(video_ids[i]) in failed)


class VideoStatesCache:
    """`encode_video` states (or the frames, when encode_video trains) of every video of one split, per
    frame-sampling variant.

    Build it with `VideoStatesCache.build(...)`; `dataset.set_transform(cache.transform())` then gives each row a
    `video_states` entry (C, N, D) — or a `pixel_values` entry (T, 3, H, W) — instead of decoding, and the collators
    pass it to the model.

    Attributes:
        states: list over variants of a (num_videos, C, N, D) or (num_videos, T, 3, H, W) tensor (bfloat16 default).
        keys: video key (the row's `video_id`) -> row index into those tensors.
        train: whether variants are jittered samplings drawn per epoch (training) or one uniform sampling (eval).
        field: "video_states" or "pixel_values": what the rows get.
        failed: video key -> the error of a video that failed to decode (its states are those of blank frames; its
            rows get `decode_error`, so the collators skip and report it as they do without a cache).
    """

    def __init__(
        self,
        states: list[torch.Tensor],
        keys: dict[str, int],
        train: bool,
        seed: int = 0,
        field="video_states",
        failed: dict[str, str] | None = None,
    ):
        self.states, self.keys, self.train, self.seed, self.field = states, keys, train, seed, field
        self.failed = dict(failed or {})  # video_id -> decode error: their rows carry it, as FrameTransform's do
        self.epoch = 0

    @property
    def variants(self) -> int:
        return len(self.states)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.states)

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model,
        dataset,
        video_processor,
        train: bool,
        variants: int = 2,
        seed: int = 0,
        backend: str = "auto",
        batch_size: int = 16,
        num_workers: int = 2,
        dtype=torch.bfloat16,
        store: FeatureStore | None = None,
        prepared=None,
    ) -> "VideoStatesCache":
        """Decode every video of `dataset` (rows with `video_id`, `video_path`, `duration_s`), run the frozen
        `model.encode_video` on it and keep the states — or keep the frames when encode_video trains.

        Args:
            model: a `TSGVForGrounding`; states are cached when its encode_video is frozen (`can_cache(model)`),
                frames otherwise.
            dataset: a `datasets.Dataset` of one split (its transform is left as it was).
            video_processor: the processor that resizes / normalises frames, as in training.
            train: True: `variants` jittered samplings (FrameTransform "random", epochs 0..variants-1 of its seeding);
                False: one uniform sampling.
            variants / seed / backend: see above and `FrameTransform`. batch_size: videos per encode_video call.
            num_workers: DataLoader processes decoding while the model encodes.
            dtype: storage type of the states.
            store: a `FeatureStore` to read the states from where it has them, and to save those it had not
                (states only: frames are not stored).
            prepared: a `prepare.PreparedStore` the frames are read from where it holds the videos.
        """
        field = "video_states" if can_cache(model) else "pixel_values"
        start, count = time.perf_counter(), (variants if train else 1)
        base = dataset.with_format(None)
        keys = {str(row_id): i for i, row_id in enumerate(base["video_id"])}
        if len(keys) != len(base):
            raise ValueError("video_id must be unique per row to cache video states")
        was_training = model.training
        model.eval()
        states, failed = [], {}
        spacing = "random" if train else "uniform"
        for variant in range(count):
            transform = FrameTransform(
                video_processor, model.config.num_frames, spacing, backend, seed=seed, prepared=prepared
            )
            transform.set_epoch(variant)
            loading = (batch_size, num_workers)
            states.append(_variant_states(model, base, transform, field, dtype, failed, loading, store, variant))
        model.train(was_training)
        cache = cls(states, keys, train, seed, field, failed)
        what = "encode_video states" if field == "video_states" else "frames (encode_video trains)"
        logger.info(
            f"cached {what} of {len(keys):,d} videos x {count} frame sampling(s): "
            f"{cache.nbytes() / 2**30:.2f} GiB in {time.perf_counter() - start:.0f} s"
            + (f"; {len(failed)} failed to decode and will be skipped" if failed else "")
        )
        return cache

    def save(self, folder: str) -> None:
        """Write the cache into `folder` (created): the states of every variant in `states.safetensors`
        (safetensors' `save_file`), and `cache.json` (keys, failures, how it was built), the latter last and
        atomically, so `load` never reads a half-written cache."""
        os.makedirs(folder, exist_ok=True)
        tensors = {f"states-{variant}": states.contiguous() for variant, states in enumerate(self.states)}
        save_file(tensors, os.path.join(folder, "states.safetensors"))
        meta = {
            "variants": len(self.states),
            "keys": self.keys,
            "train": self.train,
            "seed": self.seed,
            "field": self.field,
            "failed": self.failed,
        }
        write_text_atomic(os.path.join(folder, "cache.json"), json.dumps(meta))

    @classmethod
    def load(cls, folder: str) -> "VideoStatesCache":
        """A cache `save`d in `folder`, its states memory-mapped read-only from `states.safetensors` (`safe_open`:
        shared with every other process that maps them, the machine's page cache holds one copy). Raises
        FileNotFoundError without a complete `cache.json`."""
        with open(os.path.join(folder, "cache.json")) as f:
            meta = json.load(f)
        tensors = read_safetensors(os.path.join(folder, "states.safetensors"))
        states = [tensors[f"states-{variant}"] for variant in range(meta["variants"])]
        return cls(states, meta["keys"], meta["train"], meta["seed"], meta["field"], meta["failed"])

    def variant_of(self, video_id: str) -> int:
        """The variant used for `video_id` this epoch (0 for an evaluation cache)."""
        if not self.train or self.variants == 1:
            return 0
        return int(item_rng(self.seed, self.epoch, f"states/{video_id}").integers(self.variants))

    def row(self, video_id: str) -> torch.Tensor:
        """The cached entry of `video_id` for this epoch: (C, N, D) states or (T, 3, H, W) frames."""
        index = self.keys.get(video_id)
        if index is None:
            raise KeyError(f"video {video_id!r} is not in the video-states cache (built on another split?)")
        return self.states[self.variant_of(video_id)][index]

    def transform(self):
        """A `Dataset.set_transform` callable: adds `video_states` (C, N, D) — or `pixel_values` (T, 3, H, W) — to
        each row of the split it was built on."""
        return rows_transform(self)


class CacheParts:
    """One split's cache built in parts, one per process of a machine (each encodes its share of the videos on its
    own accelerator, `shared_per_machine`), read as one: the same `row` / `transform` / `failed` / `set_epoch` as a
    `VideoStatesCache`, each part memory-mapped from its files (not copied together: the machine keeps one copy)."""

    def __init__(self, parts: list[VideoStatesCache]):
        self.parts = parts
        self.part_of = {key: part for part in parts for key in part.keys}
        self.failed = {key: error for part in parts for key, error in part.failed.items()}
        self.field, self.train = parts[0].field, parts[0].train

    def set_epoch(self, epoch: int):
        for part in self.parts:
            part.set_epoch(epoch)

    def nbytes(self) -> int:
        return sum(part.nbytes() for part in self.parts)

    def row(self, video_id: str) -> torch.Tensor:
        part = self.part_of.get(video_id)
        if part is None:
            raise KeyError(f"video {video_id!r} is not in the video-states cache (built on another split?)")
        return part.row(video_id)

    def transform(self):
        return rows_transform(self)


def rows_transform(cache):
    """The `Dataset.set_transform` callable of a cache (`VideoStatesCache` or `CacheParts`): each row of a batch
    gets its cached entry under `cache.field` and its `decode_error` ("" when it decoded), as `FrameTransform` gives
    them, so the collators skip and report failures the same way."""

    def add_states(batch: dict) -> dict:
        ids = [str(video_id) for video_id in batch["video_id"]]
        rows = [cache.row(video_id) for video_id in ids]
        return {**batch, cache.field: rows, "decode_error": [cache.failed.get(video_id, "") for video_id in ids]}

    return add_states


def cache_dtypes(model) -> tuple[torch.dtype, torch.dtype]:
    """Storage types of the (training, evaluation) caches: training keeps states in bfloat16 (rounding within the
    bound the module docstring states) or frames in float16 (normalised 8-bit pixels fit it); evaluation keeps
    float32, so validation metrics are those of the frames."""
    return (torch.bfloat16 if can_cache(model) else torch.float16), torch.float32


def cache_bytes(model, num_train_videos: int, num_eval_videos: int, variants: int) -> int:
    """Bytes of a run's caches (`variants` samplings per training video, one per evaluation video), each in its
    `cache_dtypes` type: what one machine holds (`shared_per_machine`)."""
    frames = not can_cache(model)
    train_dtype, eval_dtype = cache_dtypes(model)
    return estimate_bytes(model.config, num_train_videos, variants, train_dtype, frames) + estimate_bytes(
        model.config, num_eval_videos, 1, eval_dtype, frames
    )


def shared_per_machine(build_share, folder: str, local_process_index: int, local_processes: int):
    """One split's cache, each process of the machine encoding its share of the videos on its own accelerator, one
    copy per machine. `build_share(share, shares)` builds the cache of rows `share, share + shares, ...` (a
    `VideoStatesCache`). With one process it is the whole cache; with several, each saves its part into
    `folder/part-<k>` and every process maps all parts (`CacheParts`).

    The processes wait for each other's parts by watching for them, not in a collective (a share can outlast the
    collectives' timeout, 30 minutes by default); one short barrier first lets the first process clear what an
    earlier run left there. The folder is removed when the first process exits (every process has mapped it by
    then: they all wait for the last part before training)."""
    if local_processes == 1:
        return build_share(0, 1)
    first = local_process_index == 0
    if first:
        shutil.rmtree(folder, ignore_errors=True)
    PartialState().wait_for_everyone()
    build_share(local_process_index, local_processes).save(os.path.join(folder, f"part-{local_process_index}"))
    if first:
        atexit.register(shutil.rmtree, folder, True)
    parts = [os.path.join(folder, f"part-{k}") for k in range(local_processes)]
    waited_s = 0
    while not all(os.path.exists(os.path.join(part, "cache.json")) for part in parts):  # written last, atomically
        time.sleep(1)
        waited_s += 1
        if waited_s % 300 == 0:
            logger.info(f"waiting for the other processes' shares of this machine's cache in {folder}")
    return CacheParts([VideoStatesCache.load(part) for part in parts])  # its own part mapped too: one copy


def local_processes(world_size: int) -> int:
    """Processes on this machine: the launcher's LOCAL_WORLD_SIZE (torchrun, accelerate launch), else all of
    `world_size` (one machine)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world_size))


def training_device(trainer) -> torch.device:
    """The device the run's caches are computed on: where the Trainer placed the model; when it postpones the
    placement (e.g. `--bf16_full_eval`) the model is moved there first. Under DeepSpeed / FSDP the engine places
    the model when training starts: the model's current device."""
    model, args = trainer.model, trainer.args
    if not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled) and not trainer.place_model_on_device:
        model.to(args.device)
    return next(model.parameters()).device


def use_video_state_cache(model, splits: dict, eval_split: str, data_args, training_args) -> bool:
    """Whether to train on cached encode_video states — or cached frames when encode_video trains (see
    --cache_video_states); logs the reason when not."""
    frames = not can_cache(model)
    problem = features_dir_problem(data_args, frames)  # the parsed arguments' rule, now with the model's tuning
    if problem:
        raise ArgumentError(problem)
    if data_args.cache_video_states == "no":
        return False
    reasons = []
    if training_args.deepspeed and not frames:
        reasons.append("DeepSpeed shards the backbone")
    if data_args.sampling == "query_centric":
        reasons.append("query-centric batches decode per query by design")
    num_eval = len(splits.get(eval_split, []))
    size_gb = cache_bytes(model, len(splits["train"]), num_eval, data_args.video_state_variants) / 2**30
    too_big = data_args.cache_video_states == "auto" and not data_args.features_dir
    if too_big and size_gb > data_args.cache_video_states_max_gb:
        reasons.append(f"it would take {size_gb:.1f} GB per machine (> --cache_video_states_max_gb)")

    if reasons and (data_args.cache_video_states == "yes" or data_args.features_dir):
        flag = "--features_dir" if data_args.features_dir else "--cache_video_states yes"
        raise ArgumentError(f"{flag} is not possible: " + "; ".join(reasons))
    if reasons:
        logger.info("not caching video states: " + "; ".join(reasons))
    return not reasons


def fill_text_states(trainer, splits: dict, device) -> None:
    """The frozen text encoder's states of every sentence of `splits`, computed once on `device` as a
    `SentenceStates` table that the Trainer's collators serve (training and evaluation)."""
    model = trainer.model
    collator = trainer.data_collator
    # every split's sentences, test too (the pipeline scores test without the table): the table's batches of
    # equal-length sentences, and so the states' last bits, depend on the whole set, and the published figures
    # of the default job come from this set (training only from train + val changed them: 78.97 -> 75.17)
    sentences = [s for dataset in splits.values() for row in dataset.with_format(None)["sentences"] for s in row]
    tokens = collator.tokenizer(sentences, truncation=True, max_length=collator.max_text_length)
    start_s = time.perf_counter()
    table = SentenceStates.encode(model.text_model, tokens["input_ids"])
    collator.text_states = trainer.eval_data_collator.text_states = table
    logger.info(
        f"text encoder states of {len(table):,d} distinct sentences computed on {device} in "
        f"{time.perf_counter() - start_s:.0f} s ({table.nbytes() / 2**20:,.0f} MB, served by the collators)"
    )


def fill_caches(
    trainer, splits: dict, eval_split, processor, data_args, prepared=None
) -> tuple[list, FeatureStore | None]:
    """Call after the Trainer has placed the model: the frozen text encoder's states of every sentence (a
    `SentenceStates` table the collators serve), and, when they fit, the frozen blocks' states of every training /
    validation video (`VideoStatesCache`, set as the splits' transforms), read from and saved to --features_dir
    when given, the frames read from the `prepared` store where it holds them. Both are computed on the training
    device (`training_device`). Returns (the video caches (they follow the epoch, for their jittered variants), the
    `FeatureStore` or None)."""
    model, training_args = trainer.model, trainer.args
    seed, caches, store = training_args.seed, [], None
    device = training_device(trainer)
    if not model.config.train_text_encoder and not training_args.deepspeed:
        fill_text_states(trainer, splits, device)
    if (
        "train" in splits
        and not data_args.evaluate_only
        and use_video_state_cache(model, splits, eval_split, data_args, training_args)
    ):
        store = FeatureStore(data_args.features_dir) if data_args.features_dir else None
        for split, train in (("train", True), (eval_split, False)):
            if split not in splits or (split == eval_split and split == "train"):
                continue

            def build(share, shares, split=split, train=train):  # this process's share of the split's videos
                rows = splits[split] if shares == 1 else splits[split].select(range(share, len(splits[split]), shares))
                return VideoStatesCache.build(
                    model,
                    rows,
                    processor.video_processor,
                    train=train,
                    variants=data_args.video_state_variants,
                    seed=seed,
                    backend=data_args.decode_backend,
                    batch_size=training_args.per_device_eval_batch_size,
                    num_workers=training_args.dataloader_num_workers,
                    dtype=cache_dtypes(model)[0 if train else 1],
                    store=store,
                    prepared=prepared,
                )

            folder = os.path.join(training_args.output_dir, f".video-states-{split}-{socket.gethostname()}")
            processes = local_processes(training_args.world_size)
            cache = shared_per_machine(build, folder, training_args.local_process_index, processes)
            splits[split].set_transform(cache.transform())
            caches.append(cache)
            if train and cache.failed:  # undecodable training videos count against the trainer's budget, now
                rows = splits[split].with_format(None)
                paths = {str(video): path for video, path in zip(rows["video_id"], rows["video_path"])}
                failed = [
                    {"video_id": v, "video_path": paths.get(str(v)), "error": e} for v, e in cache.failed.items()
                ]
                trainer.record_training_failures(failed)
    return caches, store


__all__ = [
    "fill_caches",
    "fill_text_states",
    "use_video_state_cache",
    "training_device",
    "VideoStatesCache",
    "can_cache",
    "estimate_bytes",
    "cache_dtypes",
    "cache_bytes",
    "shared_per_machine",
    "local_processes",
    "CacheParts",
    "row_shape",
]
