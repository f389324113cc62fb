"""modeling_tsgv.prepare: a dataset prepared once (frames on a time grid, JPEG, a `datasets` store) reads the same
frames as decoding the files, resumes, re-prepares changed files, names unreadable ones and is never overwritten."""

import json
import logging
import sys
import time

import numpy as np
import pytest
from conftest import REPO_ROOT, TINY_RUN, frame_number, write_test_video

from modeling_tsgv.prepare import PreparedStore, PreparedStoreError, main, prepare
from modeling_tsgv.video import read_frames, sample_times_s

sys.path.insert(0, str(REPO_ROOT))
import run_grounding  # noqa: E402


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    paths = {}
    for k, (seconds, fps) in enumerate([(10, 4), (6, 8), (12, 3)]):
        paths[f"v{k}"] = str(write_test_video(folder / f"v{k}.mp4", np.arange(0, seconds, 1 / fps), size=(48, 80)))
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    return paths, folder


def test_frames_read_from_the_store_are_the_frames_decoded_at_the_same_times(videos, tmp_path):
    paths, folder = videos
    summary = prepare(tmp_path / "store", {**paths, "broken": str(folder / "broken.mp4")}, 32, 64, progress=False)
    assert (
        summary["prepared"] == 3
        and list(summary["failed"]) == ["broken"]
        and "broken.mp4" in summary["failed"]["broken"]
    )
    assert json.loads((tmp_path / "store" / "failed.json").read_text()) == summary["failed"]
    store = PreparedStore(tmp_path / "store")
    rng = np.random.default_rng(0)
    for video_id, path in paths.items():
        decoded = read_frames(path, 8, "uniform", short_side=32)
        targets = sample_times_s(decoded.duration_s, 8, "uniform")
        frames, times_s = store.frames(video_id, targets)
        assert frames.shape == decoded.frames.shape == (8, 32, 54, 3) and frames.dtype == np.uint8
        # tolerance: the stored frame shown at a time is at most one grid step (duration / 64) before the file's
        assert np.all(times_s <= decoded.times_s + 1e-6)
        assert np.all(decoded.times_s - times_s <= decoded.duration_s / 64 + 1e-6)
        assert [frame_number(f) for f in frames] == [frame_number(f) for f in decoded.frames]
        assert np.abs(frames.astype(int) - decoded.frames.astype(int)).mean() < 2.0  # JPEG quality 90
        jittered = store.frames(video_id, sample_times_s(decoded.duration_s, 8, "random", rng))[0]
        assert jittered.shape == frames.shape


def test_a_store_resumes_prepares_changed_files_again_and_is_never_overwritten(videos, tmp_path):
    paths, folder = videos
    store_dir = tmp_path / "store"
    (store_dir / "shard-00007.tmp").mkdir(parents=True)  # an interrupted run's shard in the making
    (store_dir / "prepared.json").write_text(
        json.dumps({"version": 1, "short_side": 32, "grid_frames": 64, "jpeg_quality": 90})
    )
    first = prepare(store_dir, dict(list(paths.items())[:2]), 32, 64, shard_videos=1, progress=False)
    assert first["prepared"] == 2 and not (store_dir / "shard-00007.tmp").exists()
    again = prepare(store_dir, paths, 32, 64, progress=False)
    assert (again["prepared"], again["up_to_date"]) == (1, 2)
    time.sleep(0.01)
    write_test_video(paths["v0"], np.arange(0, 5, 0.5), size=(48, 80))  # the file changed: shorter, new mtime
    store = PreparedStore(store_dir)
    assert not store.is_current("v0") and store.is_current("v1")
    assert prepare(store_dir, paths, 32, 64, progress=False)["prepared"] == 1
    store = PreparedStore(store_dir)
    assert store.is_current("v0") and len(store) == 3
    assert store.frames("v0", np.array([4.9]))[1][0] <= 5.0  # the newest row wins
    with pytest.raises(PreparedStoreError, match="never overwritten"):
        prepare(store_dir, paths, 48, 64, progress=False)
    with pytest.raises(PreparedStoreError, match="not empty"):
        prepare(folder, paths, 32, 64, progress=False)  # a folder of other things is not taken over


def test_a_folder_that_is_no_store_is_refused_in_the_same_words_by_the_store_and_the_script(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PreparedStoreError) as store:
        PreparedStore(empty)
    assert "no prepared.json" in str(store.value) and str(empty) in str(store.value)
    with pytest.raises(run_grounding.ArgumentError) as script:
        run_grounding.main(["--output_dir", str(tmp_path / "out"), "--prepared_dir", str(empty)])
    assert str(script.value) == f"--prepared_dir {store.value}"
    assert not (tmp_path / "out").exists()


def test_training_reads_the_store_and_the_command_prepares_any_dataset(tmp_path, capsys):
    from modeling_tsgv.synthetic import generate

    world = tmp_path / "world"
    generate(world, num_videos=8, seed=0, preset="easy", progress=False)
    annotations = [str(world / "annotations" / f"{s}.jsonl") for s in ("train", "val")]
    store = tmp_path / "store"
    argv = [str(store), "--dataset", "jsonl", "--annotations", *annotations, "--video_dir", str(world)]
    assert main([*argv, "--short_side", "32", "--grid_frames", "32", "--num_workers", "2"]) == 0
    assert main([*argv, "--short_side", "48"]) == 2 and "never overwritten" in capsys.readouterr().err
    out = tmp_path / "out"
    args = [*TINY_RUN, "--synthetic_dir", str(world), "--output_dir", str(out), "--max_steps", "2"]
    args += ["--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False"]
    args += ["--cache_video_states", "no", "--prepared_dir", str(store)]
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("modeling_tsgv.splits").addHandler(handler)  # open_prepared logs it
    try:
        run_grounding.main(args)
    finally:
        logging.getLogger("modeling_tsgv.splits").removeHandler(handler)
    said = [r.getMessage() for r in records if "prepared store" in r.getMessage()]
    assert said and "6 of 6 training / validation videos read from it, 0 decoded" in said[0]
