"""FeatureStore (--features_dir): frozen features extracted once, read back exactly, re-extracted when anything that
made them changes; and the measures the study reads (backbone passes, FiLM off, step time)."""

import os
import sys

import datasets
import pytest
import torch
from conftest import REPO_ROOT as REPO
from conftest import tiny_batch, tiny_config
from test_feature_cache import make_model

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.feature_cache import VideoStatesCache
from modeling_tsgv.feature_store import FeatureStore
from modeling_tsgv.trainer import StepTimer


def build(model, rows, processor_32px, store, train=True):
    return VideoStatesCache.build(
        model,
        datasets.Dataset.from_list(rows),
        processor_32px.video_processor,
        train=train,
        variants=2,
        seed=3,
        num_workers=0,
        dtype=torch.float32,
        store=store,
    )


def test_features_are_extracted_once_and_read_back_exactly(world_rows_32px, processor_32px, minilm_path, tmp_path):
    model = make_model(minilm_path, backbone_tuning="frozen")
    plain = build(model, world_rows_32px, processor_32px, None)
    store = FeatureStore(tmp_path / "features")
    first = build(model, world_rows_32px, processor_32px, store)
    assert (store.read_videos, store.extracted_videos) == (0, 2 * len(world_rows_32px))  # 2 jittered variants
    again = FeatureStore(tmp_path / "features")
    second = build(model, world_rows_32px, processor_32px, again)
    assert (again.read_videos, again.extracted_videos) == (2 * len(world_rows_32px), 0)
    for a, b, c in zip(plain.states, first.states, second.states):
        assert torch.equal(a, b) and torch.equal(b, c)
    sections = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert len(sections) == 2 and all((tmp_path / "features" / s / "features.json").exists() for s in sections)


def test_changed_weights_sampling_or_file_are_extracted_again(world_rows_32px, processor_32px, minilm_path, tmp_path):
    model = make_model(minilm_path, backbone_tuning="frozen")
    build(model, world_rows_32px, processor_32px, FeatureStore(tmp_path), train=False)

    touched = world_rows_32px[0]["video_path"]
    os.utime(touched, ns=(os.stat(touched).st_atime_ns, os.stat(touched).st_mtime_ns + 10**9))
    store = FeatureStore(tmp_path)
    build(model, world_rows_32px, processor_32px, store, train=False)
    assert (store.read_videos, store.extracted_videos) == (len(world_rows_32px) - 1, 1)

    store = FeatureStore(tmp_path)
    build(model, world_rows_32px, processor_32px, store, train=True)  # jittered frames: other features
    assert store.read_videos == 0

    with torch.no_grad():
        model.video_model.encoder.layer[0].output.dense.bias.add_(0.1)
    store = FeatureStore(tmp_path)
    cache = build(model, world_rows_32px, processor_32px, store, train=False)
    assert (store.read_videos, store.extracted_videos) == (0, len(world_rows_32px))
    torch.testing.assert_close(
        cache.states[0], build(model, world_rows_32px, processor_32px, None, train=False).states[0]
    )


def test_a_video_that_fails_to_decode_is_not_stored(world_rows_32px, processor_32px, minilm_path, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    rows = world_rows_32px[:1] + [{**world_rows_32px[1], "video_id": "broken", "video_path": str(broken)}]
    model = make_model(minilm_path, backbone_tuning="frozen")
    cache = build(model, rows, processor_32px, FeatureStore(tmp_path / "f"), train=False)
    assert list(cache.failed) == ["broken"]
    store = FeatureStore(tmp_path / "f")
    build(model, rows, processor_32px, store, train=False)
    assert (store.read_videos, store.extracted_videos) == (1, 1)


def test_run_refuses_features_dir_when_the_backbone_trains(tmp_path):
    import subprocess

    command = [sys.executable, str(REPO / "run_grounding.py"), "--backbone_tuning", "full", "--features_dir"]
    command += [str(tmp_path / "f"), "--output_dir", str(tmp_path / "out"), "--max_train_videos", "4"]
    command += ["--max_eval_videos", "2", "--synthetic_num_videos", "40", "--synthetic_dir", str(tmp_path / "w")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert "--features_dir" in done.stderr and "frozen" in done.stderr.splitlines()[-1]


def test_run_refuses_a_features_dir_that_is_a_file(tmp_path):
    import subprocess

    (tmp_path / "f").write_text("not a folder")
    command = [sys.executable, str(REPO / "run_grounding.py"), "--features_dir", str(tmp_path / "f")]
    done = subprocess.run(command + ["--output_dir", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and "is a file, not a folder" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("scada_layers", [[1], [0, 1]])
def test_backbone_passes_count_video_and_query_blocks(scada_layers):
    """Blocks up to the first adapter run once per video clip, those above once per query clip: per training batch
    B_v*C*(first+1) + B_q*C*(L-first-1), the bound the study compares sampling against."""
    config = tiny_config(scada_layers=scada_layers)
    model = TSGVForGrounding(config).train()
    batch = tiny_batch(num_videos=2, queries_per_video=3, config=config)
    model(**batch)
    clips, blocks, first = (
        config.num_frames // config.clip_frames,
        config.backbone_config.num_hidden_layers,
        scada_layers[0],
    )
    expected = 2 * clips * (first + 1) + 6 * clips * (blocks - first - 1)
    assert model.backbone.block_clip_passes == {"train": expected, "eval": 0}
    model.eval()
    with torch.no_grad():
        model(**batch)
    assert model.backbone.block_clip_passes["eval"] == expected


def test_without_film_the_adapters_ignore_the_sentence():
    config = tiny_config(scada_film=False)
    model = TSGVForGrounding(config)
    adapter = next(iter(model.adapters.values()))
    assert adapter.film is None
    torch.nn.init.normal_(adapter.up.weight)
    hidden = torch.randn(2 * 2, 8, config.backbone_config.hidden_size)
    steps = config.clip_frames // config.backbone_config.tubelet_size
    out_a = adapter(hidden, torch.randn(2, config.text_config.hidden_size), steps)
    out_b = adapter(hidden, torch.randn(2, config.text_config.hidden_size), steps)
    assert torch.equal(out_a, out_b) and not torch.equal(out_a, hidden)
    with_film = sum(p.numel() for p in TSGVForGrounding(tiny_config()).adapters.parameters())
    assert sum(p.numel() for p in model.adapters.parameters()) < with_film


def test_step_timer_leaves_out_steps_holding_an_evaluation():
    timer = StepTimer()
    timer.on_train_begin(None, None, None)
    for step in range(4):
        if step == 2:
            timer.on_evaluate(None, None, None)
        timer.on_step_end(None, None, None)
    assert len(timer.intervals_s) == 3 and timer.median_s() >= 0
    assert StepTimer().median_s() != StepTimer().median_s()  # NaN before any step
