"""benchmarks/gpu_smoke.py's CPU dry run: the GPU smoke script's stages (the README's real-data command shape
through torchrun, the same under DeepSpeed ZeRO-3, the pipeline on one video) work before a GPU is lent."""

import importlib.util
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import gpu_smoke  # noqa: E402


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")
def test_the_gpu_smoke_script_runs_its_stages_on_the_cpu(tmp_path, capsys):
    rows = gpu_smoke.main(["--cpu", "--work", str(tmp_path), "--json", str(tmp_path / "rows.json")])
    plain, prepared, zero3, pipe = rows
    assert "--prepared_dir" in prepared["command"]
    for row in (plain, prepared, zero3):
        assert row["train_seconds_per_step"] > 0 and 0 <= row["train_data_wait_share"] <= 1
        assert row["test_num_queries"] == 3 * gpu_smoke.CPU["test_videos"]  # scored through the pipeline
        assert row["validation_split"].startswith("held out from charades_sta_train.txt")
        assert "--dataset charades-sta" in row["command"] and "--bf16" in row["command"]
    assert "zero3.json" in zero3["command"]
    assert set(pipe["timings_s"]) >= {"decode", "shared", "per_query", "total"} and pipe["top1"]["end"] > 0
    printed = capsys.readouterr().out
    assert "data wait share" in printed and "DeepSpeed ZeRO-3" in printed
    assert (tmp_path / "rows.json").exists()
