"""benchmarks/train_step.py keeps working: one tiny row per tuning mode, and its FLOP count behaves."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import train_step  # noqa: E402


def test_rows_for_every_tuning_mode_and_query_count(tmp_path, capsys):
    out = tmp_path / "rows.json"
    args = ["--sizes", "tiny", "--tuning", "scada", "full", "frozen", "--queries", "1", "2.5", "--steps", "1"]
    args += ["--image-size", "32", "--frames", "8", "--clip-frames", "4", "--videos", "2", "--json", str(out)]
    rows = train_step.main(args)
    assert [(r["tuning"], r["queries_per_video"]) for r in rows] == [
        ("scada", 1), ("scada", 2.5), ("full", 1), ("full", 2.5), ("frozen", 1), ("frozen", 2.5)
    ]  # fmt: skip
    for row in rows:
        assert row["tsgv_s_per_step"] > 0 and row["bare_s_per_step"] > 0 and row["ratio"] > 0
        assert row["clips_per_s"] == pytest.approx(4 / row["tsgv_s_per_step"])  # 2 videos x 2 clips
        assert row["text_cache"] is True  # as run_grounding.py trains a frozen text encoder
    scada_1, scada_25, full, _, frozen, _ = rows
    assert scada_25["gflop_per_step"] > scada_1["gflop_per_step"]  # the top blocks run per query
    assert full["gflop_per_step"] > scada_1["gflop_per_step"] > frozen["gflop_per_step"]
    assert full["trainable_params"] > scada_1["trainable_params"] > frozen["trainable_params"]
    assert "| tiny | scada | 2.5 |" in capsys.readouterr().out
    assert out.exists()


def test_query_counts_keep_the_mean():
    assert train_step.query_counts(10, 2.3) == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert train_step.query_counts(4, 0.5) == [1, 1, 1, 1]  # every video has a query


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")
def test_a_row_through_a_deepspeed_zero3_engine(tmp_path):
    """--deepspeed CONFIG: one process (gloo on CPU), the config's "auto" values filled, no sentence cache."""
    out = tmp_path / "rows.json"
    args = [sys.executable, str(REPO_ROOT / "benchmarks" / "train_step.py"), "--tuning", "scada", "--queries", "2"]
    args += ["--steps", "1", "--image-size", "32", "--frames", "8", "--clip-frames", "4", "--json", str(out)]
    args += ["--deepspeed", str(REPO_ROOT / "ds_configs" / "zero3.json")]
    env = {**os.environ, "MASTER_PORT": "29577"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads(out.read_text())
    assert row["deepspeed"].endswith("zero3.json") and row["text_cache"] is False
    assert row["trainable_params"] > 0 and row["tsgv_s_per_step"] > 0  # ZeRO-3 counts partitioned weights whole


def test_deepspeed_config_fills_auto_values():
    config = train_step.deepspeed_config(str(REPO_ROOT / "ds_configs" / "zero3.json"), bf16=True, width=64)
    assert config["bf16"]["enabled"] is True and config["fp16"]["enabled"] is False
    assert config["zero_optimization"]["reduce_bucket_size"] == 64 * 64
    assert "auto" not in json.dumps(config)


def test_memory_estimate_without_compute_equals_the_count_of_a_real_step():
    """--memory-estimate counts a step under FakeTensorMode: the same count as the real step on CPU tensors, and a
    full fine-tuning step needs more than a SCADA one."""
    import argparse

    import torch

    args = argparse.Namespace(
        image_size=32, clip_frames=4, attn="sdpa", frames=8, first_adapter=None, checkpointing=False, videos=2
    )
    fake = train_step.estimate_memory(args, "tiny", "scada", 2, torch.float32)
    real = train_step.estimate_memory(args, "tiny", "scada", 2, torch.float32, fake=False)
    assert fake["estimated_peak_gib"] == pytest.approx(real["estimated_peak_gib"], rel=0.02)
    assert fake["at_peak_gib"]["parameter"] == pytest.approx(real["at_peak_gib"]["parameter"], rel=1e-6)
    full = train_step.estimate_memory(args, "tiny", "full", 2, torch.float32)
    assert full["estimated_peak_gib"] > fake["estimated_peak_gib"] and full["at_peak_gib"]["optstate"] > 0
