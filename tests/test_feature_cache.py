"""VideoStatesCache: cached encode_video states give the same training step as the frames they came from."""

import datasets
import pytest
import torch
from conftest import tiny_config

from modeling_tsgv import TSGVForGrounding, feature_cache
from modeling_tsgv.data import FrameTransform, VideoCentricCollator
from modeling_tsgv.feature_cache import VideoStatesCache, can_cache, estimate_bytes


def make_model(minilm_path, **overrides):
    from transformers import AutoConfig

    torch.manual_seed(0)
    config = tiny_config(text_config=AutoConfig.from_pretrained(minilm_path), **overrides)
    model = TSGVForGrounding(config)
    with torch.no_grad():  # make the zero-initialised parts do something
        for adapter in model.adapters.values():
            adapter.up.weight.normal_(std=0.5)
        model.spatial_pool.query.weight.normal_(std=0.5)
    return model


def step(model, batch):
    """Loss and the gradients of the trainable parameters for one batch."""
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_a_step_on_cached_states_equals_a_step_on_frames(world_rows_32px, processor_32px, minilm_path):
    model = make_model(minilm_path)
    assert can_cache(model)
    dataset = datasets.Dataset.from_list(world_rows_32px)
    cache = VideoStatesCache.build(
        model,
        dataset,
        processor_32px.video_processor,
        train=True,
        variants=2,
        seed=4,
        num_workers=0,
        dtype=torch.float32,
    )
    assert len(cache.states) == 2 and cache.states[0].shape[0] == len(world_rows_32px)
    assert not torch.equal(cache.states[0], cache.states[1])  # two jittered samplings of each video
    assert cache.nbytes() == estimate_bytes(model.config, len(world_rows_32px), 2, torch.float32)

    collator = VideoCentricCollator(processor_32px, seed=4)
    cache.set_epoch(3)
    cached_rows = dataset.with_transform(cache.transform())
    cached_batch = collator([cached_rows[i] for i in range(len(world_rows_32px))])
    assert "video_states" in cached_batch and "pixel_values" not in cached_batch

    # the frames of the variant each video got this epoch, through the usual frame transform
    frames = FrameTransform(processor_32px.video_processor, model.config.num_frames, "random", seed=4)
    pixel_rows = []
    for i, row in enumerate(world_rows_32px):
        frames.set_epoch(cache.variant_of(row["video_id"]))
        pixel_rows.append(dataset.with_transform(frames)[i])
    pixel_batch = collator(pixel_rows)
    variants = {cache.variant_of(r["video_id"]) for r in world_rows_32px}
    assert variants <= {0, 1}

    model.train()
    loss_cached, grads_cached = step(model, cached_batch)
    loss_frames, grads_frames = step(model, pixel_batch)
    torch.testing.assert_close(loss_cached, loss_frames, rtol=1e-5, atol=1e-6)
    assert grads_cached.keys() == grads_frames.keys()
    for name in grads_frames:
        torch.testing.assert_close(grads_cached[name], grads_frames[name], rtol=1e-4, atol=1e-6)


def test_evaluation_cache_is_one_uniform_sampling(world_rows_32px, processor_32px, minilm_path):
    model = make_model(minilm_path, backbone_tuning="frozen")
    dataset = datasets.Dataset.from_list(world_rows_32px)
    cache = VideoStatesCache.build(model, dataset, processor_32px.video_processor, train=False, num_workers=0)
    assert len(cache.states) == 1 and cache.states[0].dtype == torch.bfloat16
    assert {cache.variant_of(r["video_id"]) for r in world_rows_32px} == {0}
    frames = dataset.with_transform(FrameTransform(processor_32px.video_processor, model.config.num_frames, "uniform"))
    with torch.no_grad():
        direct = model.encode_video(frames[0]["pixel_values"][None]).hidden_states
    cached = cache.states[0][0]
    torch.testing.assert_close(cached.float(), direct.view_as(cached), rtol=2e-2, atol=2e-2)  # bfloat16 storage


def test_full_tuning_caches_the_frames_and_gets_the_same_step(world_rows_32px, processor_32px, minilm_path):
    model = make_model(minilm_path, backbone_tuning="full")
    assert not can_cache(model)  # the embeddings train: no backbone state is fixed, so the frames are kept
    dataset = datasets.Dataset.from_list(world_rows_32px)
    cache = VideoStatesCache.build(
        model,
        dataset,
        processor_32px.video_processor,
        train=True,
        variants=1,
        seed=4,
        num_workers=0,
        dtype=torch.float16,
    )
    assert cache.field == "pixel_values" and cache.states[0].dtype == torch.float16
    assert cache.nbytes() == estimate_bytes(model.config, len(world_rows_32px), 1, torch.float16, frames=True)
    collator = VideoCentricCollator(processor_32px, seed=4)
    cached_batch = collator([dataset.with_transform(cache.transform())[i] for i in range(len(world_rows_32px))])
    frames = FrameTransform(processor_32px.video_processor, model.config.num_frames, "random", seed=4)
    frames.set_epoch(0)
    pixel_batch = collator([dataset.with_transform(frames)[i] for i in range(len(world_rows_32px))])
    assert cached_batch["pixel_values"].dtype == torch.float16  # cast by the model to its own dtype
    model.train()
    loss_cached, grads_cached = step(model, cached_batch)
    loss_frames, grads_frames = step(model, pixel_batch)
    assert any(name.startswith("backbone.video_model.embeddings") for name in grads_frames)
    torch.testing.assert_close(loss_cached, loss_frames, rtol=1e-3, atol=1e-3)  # float16 storage of the pixels
    for name in grads_frames:
        torch.testing.assert_close(grads_cached[name], grads_frames[name], rtol=5e-2, atol=5e-3)


def test_bad_cached_states_are_refused(minilm_path):
    model = make_model(minilm_path)
    bad = torch.zeros(1, 2, 3, model.config.backbone_config.hidden_size)
    with pytest.raises(ValueError, match="video_states must have shape"):
        model(video_states=bad, input_ids=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="exactly one of pixel_values"):
        model(input_ids=torch.ones(1, 3, dtype=torch.long))


def test_bfloat16_training_states_give_the_float32_step_within_the_stated_bound(
    world_rows_32px, processor_32px, minilm_path
):
    """run_grounding keeps training states in bfloat16; the module docstring states the bound this checks."""
    model = make_model(minilm_path)
    dataset = datasets.Dataset.from_list(world_rows_32px)
    collator = VideoCentricCollator(processor_32px, seed=4)
    steps = {}
    for dtype in (torch.float32, torch.bfloat16):
        cache = VideoStatesCache.build(
            model, dataset, processor_32px.video_processor, train=True, variants=1, seed=4, num_workers=0, dtype=dtype
        )
        batch = collator([dataset.with_transform(cache.transform())[i] for i in range(len(world_rows_32px))])
        model.train()
        steps[dtype] = step(model, batch)
    (loss32, grads32), (loss16, grads16) = steps[torch.float32], steps[torch.bfloat16]
    assert float(loss16) == pytest.approx(float(loss32), rel=1e-2)
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    flat16 = torch.cat([grads16[name].flatten() for name in grads32])
    assert torch.nn.functional.cosine_similarity(flat32, flat16, dim=0) >= 0.99


def mapped_file(tensor: torch.Tensor) -> str | None:
    """The file whose memory mapping holds `tensor`'s data (Linux: /proc/self/maps), None for anonymous memory."""
    address = tensor.data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            if low <= address < high:
                return fields[5] if len(fields) > 5 and fields[5].startswith("/") else None
    return None


def test_a_saved_cache_maps_its_files_instead_of_copying_them(tmp_path):
    cache = VideoStatesCache(
        [torch.randn(3, 2, 4, 5).bfloat16(), torch.randn(3, 2, 4, 5).bfloat16()],
        {"a": 0, "b": 1, "c": 2},
        train=True,
        seed=3,
        failed={"b": "moov atom not found"},
    )
    cache.save(str(tmp_path / "cache"))
    loaded = VideoStatesCache.load(str(tmp_path / "cache"))
    for saved, mapped in zip(cache.states, loaded.states):
        assert torch.equal(saved, mapped)
        assert mapped_file(mapped) == str(tmp_path / "cache" / "states.safetensors")  # processes share the page cache
    assert (loaded.keys, loaded.failed, loaded.train, loaded.seed) == (cache.keys, cache.failed, True, 3)
    assert [loaded.variant_of(v) for v in "abc"] == [cache.variant_of(v) for v in "abc"]


def test_shares_built_by_each_process_read_as_one_cache(world_rows_32px, processor_32px, minilm_path, tmp_path):
    """What `shared_per_machine` does with 2 processes of a machine, in one process: each share (rows k, k + 2, ...)
    encoded and saved on its own, then every process maps both parts and serves every row, the same as one build;
    a share with no rows (a tiny split) works too."""
    from modeling_tsgv.feature_cache import CacheParts

    model = make_model(minilm_path)
    dataset = datasets.Dataset.from_list(world_rows_32px)
    kwargs = {"train": True, "variants": 2, "seed": 4, "num_workers": 0, "dtype": torch.float32}
    whole = VideoStatesCache.build(model, dataset, processor_32px.video_processor, **kwargs)
    shares = 3 if len(dataset) < 3 else len(dataset) + 1  # one share empty
    for share in range(shares):
        rows = dataset.select(range(share, len(dataset), shares))
        VideoStatesCache.build(model, rows, processor_32px.video_processor, **kwargs).save(str(tmp_path / f"{share}"))
    parts = CacheParts([VideoStatesCache.load(str(tmp_path / f"{share}")) for share in range(shares)])
    for epoch in (0, 1):
        whole.set_epoch(epoch), parts.set_epoch(epoch)
        batch = {"video_id": [row["video_id"] for row in world_rows_32px]}
        torch.testing.assert_close(
            torch.stack(parts.transform()(batch)["video_states"]),
            torch.stack(whole.transform()(batch)["video_states"]),
        )
    assert parts.nbytes() == whole.nbytes()


def test_the_size_check_counts_the_evaluation_cache_in_float32(world_rows_32px, minilm_path):
    from types import SimpleNamespace

    model = make_model(minilm_path)
    splits = {"train": world_rows_32px, "val": world_rows_32px[:2]}
    train = estimate_bytes(model.config, len(world_rows_32px), 2, torch.bfloat16)
    size = train + estimate_bytes(model.config, 2, 1, torch.float32)
    cap_gb = (train + estimate_bytes(model.config, 2, 1, torch.bfloat16) + size) / 2 / 2**30  # between the two
    data_args = SimpleNamespace(
        cache_video_states="auto",
        sampling="video_centric",
        video_state_variants=2,
        cache_video_states_max_gb=cap_gb,
        features_dir=None,
    )
    training_args = SimpleNamespace(deepspeed=None)
    assert not feature_cache.use_video_state_cache(model, splits, "val", data_args, training_args)
    data_args.cache_video_states_max_gb = size / 2**30 * 1.01
    assert feature_cache.use_video_state_cache(model, splits, "val", data_args, training_args)


@pytest.mark.parametrize("tuning", ["scada", "frozen"])
def test_the_shared_modules_are_exactly_what_encode_video_runs(minilm_path, tuning):
    model = make_model(minilm_path, backbone_tuning=tuning) if tuning == "frozen" else make_model(minilm_path)
    video = model.video_model
    named = {"embeddings": video.embeddings, "layernorm": video.layernorm}
    named |= {f"block{i}": layer for i, layer in enumerate(video.encoder.layer)}
    ran = []
    hooks = [m.register_forward_hook(lambda *_, n=n: ran.append(n)) for n, m in named.items() if m is not None]
    with torch.no_grad():
        model.backbone.encode_video(torch.randn(1, 8, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    shared = [name for name, _ in model.backbone.shared_modules()]
    assert ran == shared
    blocks = ["block0", "block1", "block2"] if tuning == "scada" else ["block0", "block1", "block2", "block3"]
    final = ["layernorm"] if tuning == "frozen" and video.layernorm is not None else []
    assert shared == ["embeddings", *blocks, *final] and can_cache(model)
