"""The inference pipeline: registration, spans in seconds, multi-query reuse, long videos, errors."""

import numpy as np
import pytest
import torch
from conftest import tiny_config, write_test_video
from transformers import pipeline

from modeling_tsgv import TSGVForGrounding, TSGVProcessor
from modeling_tsgv.configuration_tsgv import ModelFolderError, check_model_folder
from modeling_tsgv.pipeline_tsgv import TASK, TemporalSentenceGroundingPipeline
from modeling_tsgv.processing_tsgv import normalize_frames
from modeling_tsgv.video import VideoDecodeError, read_frames
from modeling_tsgv.windows import WindowPlan, plan_windows, window_alignment

QUERIES = ["a red ball rolls left", "the blue square jumps", "someone waves", "a green star spins", "it stops"]
WINDOW_S = 20.0  # the tiny model's inference window


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A 12 s video (one window) and a 95 s one (several windows), 2 frames per second."""
    folder = tmp_path_factory.mktemp("videos")
    return {
        "short": write_test_video(folder / "short.mp4", np.arange(0, 12, 0.5)),
        "long": write_test_video(folder / "long.mp4", np.arange(0, 95, 0.5)),
    }


def test_registered_task_returns_spans_in_seconds_matching_the_model(pipe, videos):
    assert isinstance(pipe, TemporalSentenceGroundingPipeline)
    spans = pipe(videos["short"], queries=QUERIES[0], top_k=3)  # one string -> one list
    assert [set(s) for s in spans] == [{"start", "end", "score"}] * 3
    scores = [s["score"] for s in spans]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s["start"] <= s["end"] <= 11.75 for s in spans)  # 24 frames, the last shown until 12.0 s

    # a one-window video goes through exactly the training-time path: same frames, same decoding, then seconds
    model, processor = pipe.model, pipe.processor
    frames = read_frames(videos["short"], model.config.num_frames)
    inputs = processor(videos=[frames.frames], text=[QUERIES[0]], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    expected = processor.post_process_grounding(outputs, [frames.duration_s])[0]
    for got, want in zip(spans, expected):
        assert got["start"] == pytest.approx(want["start"], abs=1e-4)
        assert got["end"] == pytest.approx(want["end"], abs=1e-4)
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)


@pytest.mark.parametrize("video", ["short", "long"])
def test_many_queries_in_one_call_equal_one_query_at_a_time(pipe, videos, video):
    together = pipe(videos[video], queries=QUERIES, top_k=4, query_batch_size=2)  # 3 chunks of queries
    assert len(together) == len(QUERIES)
    for query, spans in zip(QUERIES, together):
        alone = pipe(videos[video], queries=[query], top_k=4)[0]
        assert len(alone) == len(spans) == 4
        for got, want in zip(spans, alone):
            assert got == pytest.approx(want, abs=1e-4)
    assert together[0] != together[1]  # the queries give different answers, so the equality is not vacuous


def test_shared_blocks_run_once_per_clip_however_many_queries(pipe, videos):
    layer = pipe.model.video_model.encoder.layer[pipe.model.backbone.first_query_block]
    seen = []
    handle = layer.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    try:
        for count in (1, 5):
            seen.clear()
            pipe(videos["long"], queries=QUERIES[:count])
            plan = plan_windows(94.5, 8, WINDOW_S, 0.5, align_frames=4)
            # every clip of the frame grid is encoded once, windows share clips, queries share everything
            assert sum(seen) == plan.num_grid_frames // 4, (count, seen)
    finally:
        handle.remove()
    timings = pipe.last_timings_s
    assert set(timings) == {"decode", "shared", "per_query", "total"}
    assert timings["total"] >= timings["decode"] + timings["shared"] + timings["per_query"] - 1e-6


def test_cached_clip_states_equal_a_fresh_encoding_of_every_window(pipe, videos):
    """The clip cache only ever returns the states of the very frames asked for, also with two calls interleaved."""
    model = pipe.model
    runs = {call: list(pipe.preprocess(videos[name], queries=["a"])) for call, name in ((101, "long"), (102, "short"))}
    runs[103] = list(pipe.preprocess(videos["long"], queries=["a"], window_overlap=0.75))  # hop of one clip still
    order = [(call, i) for i in range(max(map(len, runs.values()))) for call in runs if i < len(runs[call])]
    with torch.no_grad():
        for call, index in order:  # windows of the three calls interleaved, as from three threads
            window = runs[call][index]
            frames = normalize_frames(window["pixel_values"], pipe.processor.video_processor)  # as `_forward` does
            cached = pipe._clip_cache.encoded_videos(model, frames, window["frame_start"], call)
            fresh = model.encode_video(frames)
            torch.testing.assert_close(cached.hidden_states, fresh.hidden_states, rtol=0, atol=1e-5)
    assert len(runs[101]) > 2 and len(runs[103]) > len(runs[101])
    for call in runs:
        pipe._clip_cache.forget(call)


@pytest.mark.parametrize(
    "duration_s, num_frames, window_s, overlap, align",
    [
        (20.01, 32, 20.0, 0.5, 16),  # barely longer than one window
        (95.0, 48, 20.0, 0.5, 16),  # 3 clips per window: the hop rounds down to keep the overlap
        (300.0, 32, 60.0, 0.25, 16),
        (300.0, 32, 60.0, 0.0, 16),
        (61.0, 16, 10.0, 0.5, 2),  # one clip per window: hop in tubelets
        (3600.0, 64, 150.0, 0.5, 16),
    ],
)
def test_window_plan_keeps_the_overlap_and_covers_the_video(duration_s, num_frames, window_s, overlap, align):
    plan = plan_windows(duration_s, num_frames, window_s, overlap, align)
    assert plan.num_windows >= 2 and plan.hop_frames % align == 0 and 0 < plan.hop_frames <= num_frames
    assert (num_frames - plan.hop_frames) / num_frames >= overlap - 1e-9  # at least the requested overlap
    assert 0.6 * window_s <= plan.window_length_s <= window_s + 1e-9
    assert plan.num_grid_frames * plan.frame_step_s == pytest.approx(duration_s)  # the last window ends the video
    fewer = plan_windows(duration_s, num_frames, window_s * 1.5, overlap, align)
    assert fewer.num_windows <= plan.num_windows


def test_window_plan_tiles_the_video():
    one = plan_windows(12.0, 32, 60.0)
    assert (one.num_windows, one.frame_step_s) == (1, 12.0 / 32)  # training-time sampling: T frames over the video
    np.testing.assert_allclose(one.frame_times_s(), (np.arange(32) + 0.5) / 32 * 12.0)

    plan = plan_windows(1800.0, 32, 60.0, overlap=0.5, align_frames=16)
    assert plan.hop_frames == 16 and plan.window_length_s <= 60.0
    last_end_s = plan.window_start_s(plan.num_windows - 1) + plan.window_length_s
    assert last_end_s == pytest.approx(1800.0)  # the windows end exactly with the video
    assert plan.num_grid_frames * plan.frame_step_s == pytest.approx(1800.0)
    # any moment up to half a window long lies whole inside some window
    rng = np.random.default_rng(0)
    for start_s in rng.uniform(0, 1800 - plan.window_length_s / 2, 200):
        end_s = start_s + plan.window_length_s / 2
        starts = np.array([plan.window_start_s(k) for k in range(plan.num_windows)])
        assert ((starts <= start_s + 1e-9) & (starts + plan.window_length_s >= end_s - 1e-9)).any()
    with pytest.raises(ValueError, match="window_overlap"):
        plan_windows(100.0, 32, 60.0, overlap=1.0)
    with pytest.raises(ValueError, match="use at most 0.9375"):
        plan_windows(100.0, 32, 60.0, overlap=0.95, align_frames=2)
    # a tiny model (8 frames, clips of 4): overlap 0.5 keeps whole clips shared, 0.75 needs tubelet steps
    assert window_alignment(tiny_config(), 0.5) == 4 and window_alignment(tiny_config(), 0.75) == 2


def test_long_video_is_streamed_one_window_at_a_time(pipe, videos, monkeypatch):
    import modeling_tsgv.pipeline_tsgv as module

    pulled = []
    real_open = module.open_video

    def counting_open(path, backend="auto", short_side=None):
        source = real_open(path, backend, short_side)
        frames_at = source.frames_at

        def counted(times_s):
            for item in frames_at(times_s):
                pulled.append(1)
                yield item

        source.frames_at = counted
        return source

    monkeypatch.setattr(module, "open_video", counting_open)
    windows = pipe.preprocess(videos["long"], queries=["a"], backend="pyav")
    first = next(windows)
    assert len(pulled) == 8  # only the first window's frames have been decoded
    second = next(windows)
    assert len(pulled) == 12  # then only the hop
    assert first["pixel_values"].shape == second["pixel_values"].shape == (1, 8, 3, 32, 32)
    torch.testing.assert_close(first["pixel_values"][0, 4:], second["pixel_values"][0, :4])  # shared frames
    rest = list(windows)
    assert len(pulled) == first["plan"].num_grid_frames and rest[-1]["is_last"]


def test_candidates_merge_across_windows_in_seconds(pipe):
    """Two windows propose the same moment in absolute time: NMS over the video keeps it once, in seconds."""
    plan = WindowPlan(duration_s=40.0, num_frames=8, hop_frames=4, num_windows=2, frame_step_s=40.0 / 12)
    window_s = plan.window_length_s  # 26.67 s; window 1 starts at 13.33 s
    logits = torch.full((1, 4), -6.0)
    outputs = []
    for index, (step, start_norm, end_norm) in enumerate([(3, 0.75, 0.9), (1, 0.25, 0.4)]):
        offsets = torch.full((1, 4, 2), 0.01)
        centre = (step + 0.5) / 4
        offsets[0, step] = torch.tensor([centre - start_norm, end_norm - centre])
        step_logits = logits.clone()
        step_logits[0, step] = 2.0 + index  # the second window is a bit more sure
        outputs.append(
            {
                "step_logits": step_logits,
                "step_offsets": offsets,
                "queries": ["q"],
                "single_query": True,
                "window_index": index,
                "frame_start": index * 4,
                "plan": plan,
            }
        )
    spans = pipe.postprocess(outputs, top_k=2, nms_threshold=0.5)
    best = spans[0]
    assert best["start"] == pytest.approx(plan.window_start_s(1) + 0.25 * window_s, abs=1e-6)  # 20.0 s
    assert best["end"] == pytest.approx(plan.window_start_s(1) + 0.4 * window_s, abs=1e-6)
    assert best["score"] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    assert 0.75 * window_s == pytest.approx(best["start"])  # window 0 proposed the same seconds...
    assert spans[1]["score"] < 0.01  # ...and was suppressed: the runner-up is a background step


def test_batch_of_videos_and_per_video_queries(pipe, videos):
    results = pipe([videos["short"], {"video": videos["long"], "queries": "someone waves"}], queries=QUERIES[:2])
    assert len(results) == 2
    assert results[0] == pipe(videos["short"], queries=QUERIES[:2])
    assert results[1] == pipe(videos["long"], queries="someone waves")


def test_timeline_covers_the_whole_video(pipe, videos):
    timeline = pipe(videos["long"], queries=["a"], return_timeline=True)[0]
    assert set(timeline) == {"query", "spans", "times_s", "step_scores", "saliency", "duration_s"}
    assert timeline["duration_s"] == pytest.approx(94.5, abs=0.1)
    times = np.asarray(timeline["times_s"])
    assert len(times) == len(timeline["step_scores"]) == len(timeline["saliency"]) and np.all(np.diff(times) > 0)
    assert times[0] < 5 and times[-1] > 90
    assert all(0 <= s <= 1 for s in timeline["step_scores"])
    # without a saliency head the curve is the foreground probability: the windows' mean where they overlap, never
    # above their highest (up to float32's rounding: the model's sigmoid is float32, the step scores' float64)
    assert all(0 <= c <= s * (1 + 1e-6) for c, s in zip(timeline["saliency"], timeline["step_scores"]))


def test_a_saliency_head_gives_the_timeline_its_own_curve(videos, tmp_path, minilm_path):
    from conftest import save_tiny_model

    folder = save_tiny_model(tmp_path / "salient", minilm_path, saliency_head=True, inference_window_s=20.0)
    model = TSGVForGrounding.from_pretrained(folder)
    with torch.no_grad():  # make the head's curve unmistakable: a constant saliency of sigmoid(3)
        model.head.saliency[3].weight.zero_()
        model.head.saliency[3].bias.fill_(3.0)
    salient = pipeline(TASK, model=model, processor=TSGVProcessor.from_pretrained(folder), device="cpu")
    timeline = salient(videos["long"], queries=["a"], return_timeline=True)[0]
    assert np.allclose(timeline["saliency"], 1 / (1 + np.exp(-3.0)))
    assert not np.allclose(timeline["step_scores"], timeline["saliency"])


def test_dtype_and_a_folder_with_only_a_tokenizer(model_dir, videos, tmp_path, minilm_path):
    bf16 = pipeline(TASK, model=str(model_dir), device="cpu", dtype=torch.bfloat16)
    assert bf16.model.dtype == torch.bfloat16
    spans = bf16(videos["short"], queries="a red ball rolls left", top_k=2)
    assert len(spans) == 2 and all(0 <= s["start"] <= s["end"] <= 12 for s in spans)

    # a model folder with a tokenizer but no processor: frames are prepared from the config's image size
    model = TSGVForGrounding.from_pretrained(model_dir)
    model.save_pretrained(tmp_path)
    TSGVProcessor.from_pretrained(model_dir).tokenizer.save_pretrained(tmp_path)
    plain = pipeline(TASK, model=str(tmp_path), device="cpu")
    full = pipeline(TASK, model=str(model_dir), device="cpu")
    query = "a red ball rolls left"
    for got, want in zip(plain(videos["short"], queries=query), full(videos["short"], queries=query), strict=True):
        assert [got[k] for k in ("start", "end", "score")] == pytest.approx(
            [want[k] for k in ("start", "end", "score")]
        )


def test_errors_name_the_problem_and_the_path(pipe, videos, tmp_path, minilm_path):
    with pytest.raises(VideoDecodeError, match="missing.mp4: video file not found"):
        pipe(str(tmp_path / "missing.mp4"), queries="a")
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    with pytest.raises(VideoDecodeError, match="broken.mp4: cannot decode video"):
        pipe(str(broken), queries="a")
    with pytest.raises(ValueError, match=r"short.mp4: query 2 is empty"):  # numbered from 1, as everywhere
        pipe(videos["short"], queries=["a", "  "])
    with pytest.raises(ValueError, match="no query given"):
        pipe(videos["short"])
    with pytest.raises(ModelFolderError, match="not a tsgv model"):
        pipeline(TASK, model=minilm_path, device="cpu")
    with pytest.raises(ModelFolderError, match=r"not a tsgv model \(config.json has model_type 'bert'\)"):
        check_model_folder(minilm_path)
    with pytest.raises(ModelFolderError, match="no config.json"):
        check_model_folder(tmp_path)
    with pytest.raises(ModelFolderError, match="model folder not found"):
        check_model_folder(tmp_path / "nothing")
    with pytest.raises(TypeError, match="unknown argument"):
        pipe(videos["short"], queries="a", topk=3)


def test_one_pipeline_called_from_eight_threads_answers_as_sequential_calls(pipe, videos, tmp_path_factory):
    """Calls on different videos at once (the long one in several windows, sharing clip states within a call) give
    the answers of one-by-one calls, and leave no per-call state behind."""
    from concurrent.futures import ThreadPoolExecutor

    from modeling_tsgv.synthetic import generate

    world = tmp_path_factory.mktemp("threads") / "world"
    generate(world, num_videos=6, seed=1, preset="easy", progress=False)
    paths = [str(p) for p in sorted((world / "videos").glob("*.mp4"))] + [str(videos["long"]), str(videos["short"])]
    jobs = [(path, QUERIES[i % 4 : i % 4 + 2]) for i, path in enumerate(paths)]  # 8 calls, 2 queries each
    expected = [pipe(path, queries=queries, top_k=3) for path, queries in jobs]
    for threads, repeat in ((8, 1), (8, 1), (12, 2)):  # 12: more calls at once than clip caches kept
        with ThreadPoolExecutor(max_workers=threads) as pool:
            got = list(pool.map(lambda job: pipe(job[0], queries=job[1], top_k=3), jobs * repeat))
        for answer, reference in zip(got, expected * repeat):
            for spans, reference_spans in zip(answer, reference):
                assert [s["start"] for s in spans] == pytest.approx([s["start"] for s in reference_spans], abs=1e-4)
                assert [s["end"] for s in spans] == pytest.approx([s["end"] for s in reference_spans], abs=1e-4)
                assert [s["score"] for s in spans] == pytest.approx([s["score"] for s in reference_spans], abs=1e-4)
    assert pipe._clip_cache.calls == {} and pipe._timings == {}  # memory stays bounded: nothing kept per finished call


def _assert_same_spans(got, want):
    for spans, reference in zip(got, want, strict=True):
        for key in ("start", "end", "score"):
            assert [s[key] for s in spans] == pytest.approx([s[key] for s in reference], abs=1e-4), key


@pytest.fixture(scope="module")
def short_videos(tmp_path_factory):
    """Five one-window videos of different lengths (so their frames differ)."""
    folder = tmp_path_factory.mktemp("short_videos")
    return [write_test_video(folder / f"v{i}.mp4", np.arange(0, 6 + 2 * i, 0.5)) for i in range(5)]


def test_batch_size_grounds_several_short_videos_in_one_pass_with_the_same_answers(pipe, videos, short_videos):
    """batch_size=3: one-window videos go through the model three at a time (different query counts and token
    lengths padded together); a longer video in between flushes the waiting ones and keeps the order."""
    items = [
        {"video": short_videos[0], "queries": QUERIES[:2]},
        {"video": short_videos[1], "queries": ["a much longer sentence about a small red ball rolling to the left"]},
        {"video": videos["long"], "queries": QUERIES[:1]},
        *({"video": path, "queries": QUERIES[i : i + 3]} for i, path in enumerate(short_videos[2:])),
    ]
    expected = [pipe(item, top_k=3) for item in items]
    embeddings = pipe.model.video_model.embeddings
    seen = []
    handle = embeddings.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    try:
        got = pipe(items, top_k=3, batch_size=3)
    finally:
        handle.remove()
    for answer, reference in zip(got, expected, strict=True):
        _assert_same_spans(answer, reference)
    clips = pipe.model.config.num_frames // pipe.model.config.clip_frames
    long_windows = plan_windows(94.5, 8, WINDOW_S, 0.5, align_frames=4).num_windows
    # 2 short videos flushed before the long one, the long one window by window (first whole, then new clips), 3
    assert seen == [2 * clips, clips] + [1] * (long_windows - 1) + [3 * clips]
    assert pipe._clip_cache.calls == {} and pipe._timings == {}


def test_batch_size_from_the_pipeline_and_lazily_for_a_generator(model_dir, short_videos):
    batched = pipeline(TASK, model=str(model_dir), device="cpu", batch_size=2)
    plain = pipeline(TASK, model=str(model_dir), device="cpu")
    results = batched((path for path in short_videos[:3]), queries=QUERIES[:2])
    assert not isinstance(results, list)
    for path, answer in zip(short_videos[:3], results, strict=True):
        _assert_same_spans(answer, plain(path, queries=QUERIES[:2]))


@pytest.mark.parametrize("decode_ahead", [True, False])
def test_decoding_ahead_gives_the_same_answers_and_stops_its_thread(pipe, videos, tmp_path, decode_ahead):
    import threading

    reference = pipe(videos["long"], queries=QUERIES[:2], decode_ahead=False)
    _assert_same_spans(pipe(videos["long"], queries=QUERIES[:2], decode_ahead=decode_ahead), reference)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    # an unreadable video in a list: the error names it, the decoding thread and per-call state are gone
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        pipe([videos["short"], str(broken), videos["long"]], queries="a", decode_ahead=decode_ahead, batch_size=2)
    assert not [t for t in threading.enumerate() if t.name == "tsgv-decode-ahead"]
    assert pipe._clip_cache.calls == {} and pipe._timings == {}
    # a generator abandoned half way closes its thread and video when it is closed
    results = pipe((path for path in [videos["long"], videos["short"]]), queries="a", decode_ahead=decode_ahead)
    next(results)
    results.close()
    assert not [t for t in threading.enumerate() if t.name == "tsgv-decode-ahead"]


@pytest.mark.parametrize("value", [0, -1, 2.5, "2", True])
def test_batch_size_must_be_a_positive_integer(pipe, videos, value):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        pipe(videos["short"], queries="a", batch_size=value)


def test_min_score_keeps_the_spans_above_it_and_calibration_rescores_them(pipe, videos):
    """`min_score`: of the top_k, the spans scoring at least it (possibly none); a calibrated model's scores are
    its Platt-scaled probabilities, ranked as before, one window or several."""
    for video in ("short", "long"):
        spans = pipe(videos[video], queries=QUERIES[0], top_k=5)
        middle = spans[2]["score"]
        kept = pipe(videos[video], queries=QUERIES[0], top_k=5, min_score=middle)
        assert kept == [s for s in spans if s["score"] >= middle] and len(kept) >= 3
        assert pipe(videos[video], queries=QUERIES[0], top_k=5, min_score=1.0) == []
        config = pipe.model.config
        config.span_calibration = [2.0, -1.0]
        try:
            calibrated = pipe(videos[video], queries=QUERIES[0], top_k=5)
        finally:
            config.span_calibration = None
        assert [(s["start"], s["end"]) for s in calibrated] == [(s["start"], s["end"]) for s in spans]
        logit = np.log([s["score"] for s in spans]) - np.log1p(-np.array([s["score"] for s in spans]))
        assert [s["score"] for s in calibrated] == pytest.approx(1 / (1 + np.exp(-(2 * logit - 1))), abs=1e-6)
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="min_score must be a score in"):
            pipe(videos["short"], queries="a", min_score=bad)


def test_num_workers_is_refused_with_the_reason(pipe, videos):
    with pytest.raises(ValueError, match="num_workers is not used.*decodes ahead"):
        pipe(videos["short"], queries="a", num_workers=4)


def test_stage_times_on_an_accelerator_come_from_device_events_read_once_the_call_ends(monkeypatch):
    """No wait between stages: marks are device events, read (each waited for) only when the call settles."""
    from modeling_tsgv.pipeline_tsgv import StageClock

    class Event:  # torch.Event as a GPU gives it: elapsed_time in milliseconds, valid after synchronize
        clock = iter(range(0, 10_000, 250))

        def __init__(self, device, enable_timing):
            self.recorded_ms, self.synced = None, False

        def record(self):
            self.recorded_ms = next(Event.clock)

        def synchronize(self):
            self.synced = True

        def elapsed_time(self, end):
            assert end.synced, "read before its work was done"
            return end.recorded_ms - self.recorded_ms

    monkeypatch.setattr(torch, "Event", Event)
    clock = StageClock(torch.device("cpu"))
    clock.events = True  # as on an available accelerator
    mine, theirs = {"shared": 0.0, "per_query": 0.0}, {"shared": 0.0, "per_query": 0.0}
    start, middle, end = clock.now(), clock.now(), clock.now()
    clock.add("shared", start, middle, mine)
    clock.add("per_query", middle, end, mine)
    clock.add("shared", clock.now(), clock.now(), theirs)  # another thread's call
    assert mine == {"shared": 0.0, "per_query": 0.0}  # nothing read yet
    clock.settle(mine)
    assert mine == {"shared": 0.25, "per_query": 0.25} and theirs["shared"] == 0.0
    clock.settle(theirs)
    assert theirs["shared"] == 0.25


def test_a_broken_video_among_several_can_be_returned_in_its_place(pipe, tmp_path):
    """decode_errors="return": the missing video's VideoDecodeError comes back in its place, the others are answered
    as on their own; the default still raises, naming the file."""
    from conftest import write_test_video

    from modeling_tsgv.video import VideoDecodeError

    good = write_test_video(tmp_path / "good.mp4", [i / 4 for i in range(40)], size=(32, 32))
    long = write_test_video(tmp_path / "long.mp4", [i / 4 for i in range(4 * 45)], size=(32, 32))  # windows
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    inputs = [str(good), str(broken), str(long), str(tmp_path / "missing.mp4"), str(good)]
    answers = pipe(inputs, queries=["a grey square"], batch_size=2, decode_errors="return")
    assert isinstance(answers[1], VideoDecodeError) and isinstance(answers[3], VideoDecodeError)
    assert "missing.mp4" in str(answers[3])
    alone = pipe(str(good), queries=["a grey square"])
    assert answers[0] == alone and answers[4] == alone and answers[2] == pipe(str(long), queries=["a grey square"])
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        pipe(inputs, queries=["a grey square"])
    with pytest.raises(ValueError, match="decode_errors"):
        pipe(inputs, queries=["a grey square"], decode_errors="skip")
