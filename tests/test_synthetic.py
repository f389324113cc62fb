"""Tests of the synthetic grounding world: layout, decodable videos, annotations, held-out combos, caching, pixels."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from modeling_tsgv import synthetic
from modeling_tsgv.synthetic import SPLITS, generate, held_out_combos, plan_video, split_counts

# 8 short 64x64 videos at 8 fps: splits 5 / 1 / 1 / 1, about a second to generate.
WORLD = {"num_videos": 8, "seed": 0, "image_size": 64, "fps": 8, "min_duration_s": 8.0, "max_duration_s": 12.0}
PLAN_PARAMS = {"fps": 8, "image_size": 64, "min_duration_s": 8.0, "max_duration_s": 12.0}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("world")
    generate(out_dir, **WORLD, num_workers=2, progress=False)
    return out_dir


@pytest.fixture(scope="module")
def world_copy(tmp_path_factory) -> Path:
    """The same world generated again, in one process (so worker count and order cannot matter)."""
    out_dir = tmp_path_factory.mktemp("world_copy")
    generate(out_dir, **WORLD, num_workers=1, progress=False)
    return out_dir


def read_queries(out_dir: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "annotations" / f"{split}.jsonl").read_text().splitlines()]


def decode(path: Path) -> np.ndarray:
    """All frames of an mp4 as (num_frames, H, W, 3) uint8 RGB."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_file_layout(world):
    meta = json.loads((world / "meta.json").read_text())
    durations = json.loads((world / "annotations" / "durations.json").read_text())
    assert sorted(durations) == [f"syn{i:05d}" for i in range(8)] == meta["video_ids"]
    assert sorted(p.name for p in (world / "videos").iterdir()) == [f"{v}.mp4" for v in sorted(durations)]
    assert {split: meta["counts"][split]["videos"] for split in SPLITS} == split_counts(8, (0.7, 0.1, 0.1, 0.1))
    for split in SPLITS:
        queries = read_queries(world, split)
        assert meta["counts"][split]["videos"] >= 1
        assert meta["counts"][split]["queries"] == len(queries) >= 1
        assert all((world / q["video_path"]).is_file() for q in queries)
    assert meta["params"]["seed"] == 0 and meta["held_out_combos"] == [list(c) for c in held_out_combos(0)]
    assert meta["params"]["held_out_seed"] == 0


def test_videos_decode_with_stated_duration_and_size(world):
    durations = json.loads((world / "annotations" / "durations.json").read_text())
    for video_id, duration_s in durations.items():
        assert 8.0 <= duration_s <= 12.0
        with av.open(str(world / "videos" / f"{video_id}.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = list(container.decode(video=0))
        assert abs(len(frames) - duration_s * WORLD["fps"]) <= 1
        assert frames[0].width == frames[0].height == WORLD["image_size"]
        key_frame_indices = [i for i, frame in enumerate(frames) if frame.key_frame]
        assert np.diff(key_frame_indices).max() <= WORLD["fps"]  # a keyframe at least every second


def test_annotation_spans_lie_inside_videos(world):
    durations = json.loads((world / "annotations" / "durations.json").read_text())
    for split in SPLITS:
        for q in read_queries(world, split):
            assert q["duration_s"] == durations[q["video_id"]]
            assert 0.0 <= q["start_s"] < q["end_s"] <= q["duration_s"]
            assert q["action"] in synthetic.ACTIONS and q["object"]["shape"] in synthetic.SHAPES
            assert q["sentence"] and "##" not in q["sentence"] and "\n" not in q["sentence"]


def test_held_out_combos_only_in_test_novel(world):
    held_out = {tuple(c) for c in json.loads((world / "meta.json").read_text())["held_out_combos"]}
    assert 0 < len(held_out) < len(synthetic.COLOURS) * len(synthetic.ACTIONS) // 4
    for split in ("train", "val", "test"):  # these annotations list every event, distractors included
        assert all((q["object"]["colour"], q["action"]) not in held_out for q in read_queries(world, split))
    novel = read_queries(world, "test_novel")
    assert novel and all((q["object"]["colour"], q["action"]) in held_out for q in novel)


def test_plans_respect_held_out_combos_and_have_distractors():
    """Planning only (no rendering) for many videos: held-out combos, unique objects, event counts and lengths."""
    held_out = held_out_combos(3)
    for index in range(150):
        novel_combo = held_out[index % len(held_out)] if index % 3 == 0 else None
        plan = plan_video(index, "test_novel" if novel_combo else "train", 3, PLAN_PARAMS, held_out, novel_combo)
        combos = [(plan.objects[e.object_index].colour, e.action) for e in plan.events]
        if novel_combo:
            assert novel_combo in combos
        else:
            assert not set(combos) & set(held_out)
        pairs = [(e.object_index, e.action) for e in plan.events]
        distinct = sorted(set(pairs))
        assert 2 <= len(plan.objects) <= 4 and 2 <= len(distinct) <= 5 and len(pairs) - len(distinct) <= 1
        assert all(pair[1] in synthetic.REPEATABLE_ACTIONS for pair in distinct if pairs.count(pair) > 1)
        assert len({(o.colour, o.shape) for o in plan.objects}) == len(plan.objects)
        assert all(1.5 <= round(e.end_s - e.start_s, 2) <= 8.0 for e in plan.events)
        actions, objects = [a for _, a in distinct], [i for i, _ in distinct]
        assert len(set(actions)) < len(actions) or len(set(objects)) < len(objects)  # some distractor


def test_some_sentences_have_two_moments():
    """About a quarter of the videos repeat one action of one object; its one query carries both moments, apart and
    in time order; a video that does not try a repeat is planned exactly as without repeats (their own random stream)."""
    held_out = held_out_combos(0)
    repeats, unchanged, params = 0, 0, {**PLAN_PARAMS, "repeat_probability": synthetic.REPEAT_PROBABILITY}
    for index in range(200):
        plan = plan_video(index, "train", 0, params, held_out)
        queries = synthetic.world._queries(np.random.default_rng(0), plan, set(held_out))
        assert len(queries) == len({(e.object_index, e.action) for e in plan.events})
        for query in (q for q in queries if "windows_s" in q):
            (s1, e1), (s2, e2) = query["windows_s"]
            assert s1 < e1 < s2 < e2 and s2 - e1 >= synthetic.EVENT_GAP_S - 1e-9
            assert [query["start_s"], query["end_s"]] == [s1, e1] and query["action"] in synthetic.REPEATABLE_ACTIONS
            repeats += 1
        unchanged += plan == plan_video(index, "train", 0, {**params, "repeat_probability": 0.0}, held_out)
    assert 0.15 * 200 <= repeats <= 0.4 * 200 and unchanged >= 0.4 * 200


def test_split_videos_grow_the_test_splits_around_the_same_training_world(world, tmp_path):
    """Larger test splits for evaluation that resolves small differences: train and val stay the same videos."""
    bigger = generate(tmp_path, **{**WORLD, "num_videos": None}, split_videos=[5, 1, 3, 4], progress=False)
    assert {split: bigger["counts"][split]["videos"] for split in SPLITS} == dict(zip(SPLITS, [5, 1, 3, 4]))
    for split in ("train", "val"):
        assert (tmp_path / f"annotations/{split}.jsonl").read_bytes() == (
            world / f"annotations/{split}.jsonl"
        ).read_bytes()
    with pytest.raises(ValueError, match="split_videos must be 4 counts"):
        generate(tmp_path / "bad", **WORLD, split_videos=[0, 1, 1, 1], progress=False)


def test_charades_sta_matches_jsonl(world):
    for split in SPLITS:
        lines = (world / "annotations" / f"{split}.charades_sta.txt").read_text().split("\n")
        assert lines[-1] == ""  # trailing newline
        parsed = []
        for line in lines[:-1]:
            head, sentence = line.split("##")
            video_id, start, end = head.split(" ")
            parsed.append((video_id, float(start), float(end), sentence))
        expected = [
            (q["video_id"], start_s, end_s, q["sentence"])
            for q in read_queries(world, split)
            for start_s, end_s in q.get("windows_s", [[q["start_s"], q["end_s"]]])
        ]  # a sentence with two moments: one line per moment, as Charades-STA writes them
        assert parsed == expected


def test_deterministic_for_a_seed(world, world_copy, tmp_path):
    for name in [f"{s}.jsonl" for s in SPLITS] + ["durations.json"]:
        assert (world / "annotations" / name).read_bytes() == (world_copy / "annotations" / name).read_bytes()
    np.testing.assert_array_equal(decode(world / "videos/syn00003.mp4"), decode(world_copy / "videos/syn00003.mp4"))
    generate(tmp_path, **{**WORLD, "seed": 1}, num_workers=1, progress=False)
    assert (tmp_path / "annotations/train.jsonl").read_bytes() != (world / "annotations/train.jsonl").read_bytes()


def test_second_call_reuses_the_world(world_copy):
    files = sorted(p for p in world_copy.rglob("*") if p.is_file())
    mtimes_ns = [p.stat().st_mtime_ns for p in files]
    meta = generate(world_copy, **WORLD, progress=False)
    assert [p.stat().st_mtime_ns for p in files] == mtimes_ns
    assert meta == json.loads((world_copy / "meta.json").read_text())
    (world_copy / "videos" / "syn00001.mp4").unlink()  # a missing file makes it regenerate
    generate(world_copy, **WORLD, progress=False)
    assert (world_copy / "videos" / "syn00001.mp4").is_file()
    assert (world_copy / "meta.json").stat().st_mtime_ns != mtimes_ns[files.index(world_copy / "meta.json")]


def colour_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    rgb = np.array(synthetic.COLOURS[colour][0], dtype=np.float64)
    return np.linalg.norm(frame.astype(np.float64) - rgb, axis=-1) < 60  # (H, W)


def test_events_happen_in_the_pixels(world):
    """At the end of a move the object's colour has left its start and arrived in the move's direction; grow,
    shrink, appear and disappear change its area. Only events with no same-colour event near them in time."""
    directions = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}
    area_change = {"grow": 1, "shrink": -1, "appear": 1, "disappear": -1}
    queries = [q for split in ("train", "val", "test") for q in read_queries(world, split)]  # every event annotated
    checked = 0
    for q in queries:
        near = [o for o in queries if o["video_id"] == q["video_id"] and o is not q]
        near = [o for o in near if o["start_s"] < q["end_s"] + 0.5 and q["start_s"] < o["end_s"] + 0.5]
        colour = q["object"]["colour"]
        if any(o["object"]["colour"] == colour or o["action"] == "change_colour" for o in near):
            continue
        if q["action"] not in directions and q["action"] not in area_change:
            continue
        frames = decode(world / q["video_path"])
        first = colour_mask(frames[round(q["start_s"] * WORLD["fps"])], colour)
        last = colour_mask(frames[min(round(q["end_s"] * WORLD["fps"]), len(frames) - 1)], colour)
        if q["action"] in directions:
            left, arrived = np.argwhere(first & ~last), np.argwhere(last & ~first)  # (N, 2) rows, cols
            shift_px = (arrived.mean(0) - left.mean(0))[::-1] @ np.array(directions[q["action"]])
            assert shift_px > 3, q
        else:
            assert np.sign(int(last.sum()) - int(first.sum())) == area_change[q["action"]], q
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_videos": 0}, "num_videos"),
        ({"min_duration_s": 20.0, "max_duration_s": 10.0}, "min_duration_s"),
        ({"split_fractions": (0.5, 0.1, 0.1, 0.1)}, "split_fractions"),
        ({"split_fractions": (0.8, 0.2)}, "split_fractions"),
        ({"image_size": 63}, "image_size"),
    ],
)
def test_bad_arguments_raise(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(tmp_path, **kwargs, progress=False)
    assert not (tmp_path / "meta.json").exists()


@pytest.mark.parametrize("num_videos", [1, 3, 4, 5, 11, 500])
def test_split_counts(num_videos):
    counts = split_counts(num_videos, (0.7, 0.1, 0.1, 0.1))
    assert sum(counts.values()) == num_videos
    assert num_videos < 4 or min(counts.values()) >= 1
    assert counts["train"] == max(counts.values())


def test_split_counts_leave_zero_fraction_splits_empty():
    assert split_counts(40, (0.9, 0.1, 0.0, 0.0)) == {"train": 36, "val": 4, "test": 0, "test_novel": 0}


def test_easy_preset_blinks_slower_and_spins_at_a_set_speed():
    """The easy world's actions show in 32 frames over 8-16 s (one every 0.25-0.5 s): dark blink phases last 0.625 s,
    a spin turns 40 deg/s; the standard world keeps 2.5 Hz and one turn per event."""
    params = {**dataclasses.asdict(synthetic.PRESETS["easy"])}
    events = {"spin": 0, "blink": 0}
    for index in range(60):
        plan = plan_video(index, "train", 0, params, held_out_combos(0))
        tracks = synthetic.object_tracks(plan)
        for event in plan.events:
            if event.action == "spin":
                events["spin"] += 1
                assert abs(event.amount) == pytest.approx(40.0 * (event.end_s - event.start_s) / 360.0)
            if event.action == "blink":
                events["blink"] += 1
                frame_times_s = np.arange(plan.num_frames) / plan.fps
                during = (frame_times_s >= event.start_s) & (frame_times_s < event.end_s)
                dark = np.flatnonzero(during & (tracks["alpha"][event.object_index] == 0.0))
                runs = np.split(dark, np.flatnonzero(np.diff(dark) > 1) + 1)
                full = [run for run in runs[:-1] if len(run)]  # the last dark phase may be cut by the event's end
                assert all(len(run) / plan.fps >= 0.6 for run in full)
    assert events["spin"] and events["blink"]
    standard = plan_video(3, "train", 0, {}, held_out_combos(0))
    assert standard.blink_hz == 2.5
    assert all(abs(e.amount) == 1.0 for i in range(40) for e in plan_video(i, "train", 0, {}, []).events
               if e.action == "spin")  # fmt: skip


def test_cli(tmp_path):
    command = [sys.executable, "-m", "modeling_tsgv.synthetic", str(tmp_path), "--num-videos", "4", "--seed", "5"]
    command += ["--image-size", "32", "--min-duration-s", "8", "--max-duration-s", "8", "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "test_novel:    1 videos" in result.stdout
    assert len(list((tmp_path / "videos").glob("syn*.mp4"))) == 4
    assert json.loads((tmp_path / "meta.json").read_text())["params"]["seed"] == 5
