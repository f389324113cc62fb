"""benchmarks/input_pipeline.py on short files: every reading path gives 224-px samples through a real DataLoader,
and the table and JSON say videos/s per core and how many cores feed a GPU."""

import json
import sys

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import input_pipeline  # noqa: E402


def test_the_input_pipeline_benchmark_measures_every_path(tmp_path, capsys):
    rows = input_pipeline.main(
        ["--quick", "--samples", "3", "--workers", "1", "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    )
    kinds = {"charades-like", "activitynet-like"}
    assert {(r["kind"], r["path"]) for r in rows} >= {(k, p) for k in kinds for p in input_pipeline.PATHS}
    assert all(r["videos_per_s_per_core"] > 0 and r["workers"] == 1 for r in rows)
    by = {(r["kind"], r["path"]): r for r in rows}
    uint8, float32 = "prepared store, uint8 (run_grounding --prepared_dir)", "prepared store, float32"
    assert by[("charades-like", uint8)]["mb_per_s"] / by[("charades-like", uint8)]["videos_per_s"] < 0.3 * (
        by[("charades-like", float32)]["mb_per_s"] / by[("charades-like", float32)]["videos_per_s"]
    )  # a quarter of the bytes per video
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["videos"] >= 3 and len(saved["rows"]) == len(rows)
    assert "cores for ViT-B scada" in capsys.readouterr().out
