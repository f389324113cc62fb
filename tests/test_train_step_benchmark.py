"""benchmarks/train_step.py keeps working: one tiny row per tuning mode, and its FLOP count behaves."""

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
        ("scada", 1), ("scada", 2.5), ("full", 1), ("frozen", 1)
    ]  # fmt: skip
    for row in rows:
        assert row["tsgv_s_per_step"] > 0 and row["bare_s_per_step"] > 0 and row["ratio"] > 0
        assert row["clips_per_s"] == pytest.approx(4 / row["tsgv_s_per_step"])  # 2 videos x 2 clips
    scada_1, scada_25, full, frozen = rows
    assert scada_25["gflop_per_step"] > scada_1["gflop_per_step"]  # the top blocks run per query
    assert full["gflop_per_step"] > scada_1["gflop_per_step"] > frozen["gflop_per_step"]
    assert full["trainable_params"] > scada_1["trainable_params"] > frozen["trainable_params"]
    assert "| tiny | scada | 2.5 |" in capsys.readouterr().out
    assert out.exists()


def test_query_counts_keep_the_mean():
    assert train_step.query_counts(10, 2.3) == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert train_step.query_counts(4, 0.5) == [1, 1, 1, 1]  # every video has a query
