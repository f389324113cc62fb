"""TSGVForGrounding on a tiny config: shapes, SCADA identity, video-centric sharing, tuning modes, HF behaviour."""

import pytest
import torch
from conftest import tiny_batch, tiny_config
from transformers import AutoConfig, AutoModel, BertModel, PreTrainedModel, VideoMAEModel

from modeling_tsgv import TSGVConfig, TSGVForGrounding
from modeling_tsgv.loss_tsgv import assign_targets, diou_loss_1d
from modeling_tsgv.text_states import SentenceStates


def make_model(seed=0, perturb_adapters=True, **overrides) -> TSGVForGrounding:
    """A tiny model; `perturb_adapters` makes the zero-initialised `up` projections (and the sentence query of the
    spatial pooling) non-zero, so queries matter."""
    torch.manual_seed(seed)
    model = TSGVForGrounding(tiny_config(**overrides))
    if perturb_adapters:
        with torch.no_grad():
            for adapter in model.adapters.values():
                adapter.up.weight.normal_(std=0.5)
            if model.spatial_pool is not None:
                model.spatial_pool.query.weight.normal_(std=0.5)
    return model.eval()


def test_output_shapes_ranges_and_loss():
    model = make_model()
    batch = tiny_batch(num_videos=2, queries_per_video=3)
    out = model(**batch)
    # K = min(max_spans=3, L_t=4)
    assert out.pred_spans.shape == (6, 3, 2)
    assert out.pred_scores.shape == (6, 3)
    assert out.step_logits.shape == (6, 4)
    assert out.step_offsets.shape == (6, 4, 2)
    assert out.video_hidden_states.shape == (6, 4, 32)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert set(out.loss_dict) == {"focal", "diou", "l1"}
    spans = out.pred_spans
    assert (spans >= 0).all() and (spans <= 1).all() and (spans[..., 0] <= spans[..., 1]).all()
    assert (out.pred_scores[:, 1:] <= out.pred_scores[:, :-1]).all()  # best first
    assert model(**{k: v for k, v in batch.items() if k != "labels"}).loss is None


def test_fresh_scada_model_computes_plain_videomae_features():
    torch.manual_seed(0)
    model = TSGVForGrounding(tiny_config()).eval()  # adapters at their zero init
    batch = tiny_batch(num_videos=2, queries_per_video=1)
    sentence = torch.randn(2, model.config.text_config.hidden_size)
    ours = model.backbone.query_features(
        model.encode_video(batch["pixel_values"]), sentence, batch["query_video_index"]
    )  # (2, 4, 32)

    plain = VideoMAEModel(model.config.backbone_config).eval()
    plain.load_state_dict(model.video_model.state_dict())
    clips = batch["pixel_values"].view(4, 4, 3, 32, 32)  # (B_v * 2 clips, 4 frames, 3, 32, 32)
    tokens = plain(clips).last_hidden_state  # (4, 8 tokens = 2 steps x 4 patches, 32)
    expected = tokens.view(2, 2, 2, 4, 32).mean(3).reshape(2, 4, 32)  # (B_v, L_t, D)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)

    # the comparison can fail: a non-zero adapter changes the features
    with torch.no_grad():
        next(iter(model.adapters.values())).up.weight.fill_(0.1)
    changed = model.backbone.query_features(
        model.encode_video(batch["pixel_values"]), sentence, batch["query_video_index"]
    )
    assert not torch.allclose(changed, expected)


class CallCounter:
    """Forward hook that records the batch size each call of a module saw."""

    def __init__(self, module):
        self.batch_sizes = []
        module.register_forward_hook(lambda _m, args, _out: self.batch_sizes.append(args[0].shape[0]))


def test_video_centric_batch_equals_one_query_at_a_time_and_shares_lower_blocks():
    model = make_model()
    layers = model.video_model.encoder.layer
    first_scada = min(model.config.scada_layers)
    assert first_scada == 2  # top half of 4 blocks
    below, above = CallCounter(layers[first_scada]), CallCounter(layers[first_scada + 1])
    batch = tiny_batch(num_videos=1, queries_per_video=4)
    together = model(**batch)
    # 2 clips per video: blocks up to the first SCADA block see 1 video (2 clips), the ones above 4 queries (8 clips)
    assert below.batch_sizes == [2] and above.batch_sizes == [8]

    for q in range(4):
        single = model(
            pixel_values=batch["pixel_values"],
            input_ids=batch["input_ids"][q : q + 1],
            attention_mask=batch["attention_mask"][q : q + 1],
            query_video_index=torch.zeros(1, dtype=torch.long),
            labels=batch["labels"][q : q + 1],
        )
        torch.testing.assert_close(together.step_logits[q], single.step_logits[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(together.pred_spans[q], single.pred_spans[0], rtol=0, atol=1e-5)
    # and the queries really differ (so the equality above is not vacuous)
    assert not torch.allclose(together.step_logits[0], together.step_logits[1])


def test_queries_are_routed_to_their_own_video():
    model = make_model()
    batch = tiny_batch(num_videos=3, queries_per_video=1)
    order = torch.tensor([2, 0, 1, 2])
    routed = model(
        pixel_values=batch["pixel_values"],
        input_ids=batch["input_ids"][[0, 0, 0, 0]],
        attention_mask=batch["attention_mask"][[0, 0, 0, 0]],
        query_video_index=order,
    )
    for q, video in enumerate(order.tolist()):
        alone = model(pixel_values=batch["pixel_values"][video : video + 1], input_ids=batch["input_ids"][:1])
        torch.testing.assert_close(routed.step_logits[q], alone.step_logits[0], rtol=0, atol=1e-5)


def _grads_after_backward(model, batch):
    model.train()
    model.zero_grad()
    model(**batch).loss.backward()
    return {name: param.grad for name, param in model.named_parameters()}


@pytest.mark.parametrize(
    "mode,train_text,expect_backbone",
    [
        ("scada", False, lambda name: False),
        ("scada", True, lambda name: False),
        ("frozen", False, lambda name: False),
        ("partial", False, lambda name: ".layer.3." in name or ".layer.2." in name),
        ("full", False, lambda name: True),
    ],
)
def test_gradients_reach_exactly_the_trainable_parameters(mode, train_text, expect_backbone):
    model = make_model(backbone_tuning=mode, train_text_encoder=train_text)
    grads = _grads_after_backward(model, tiny_batch())
    for name, param in model.named_parameters():
        if name.startswith("backbone.video_model."):
            should_train = expect_backbone(name)
        elif name.startswith("text_model."):
            should_train = train_text and ".pooler." not in name  # BERT's pooler is unused, so it stays frozen
        else:
            should_train = True
        assert param.requires_grad == should_train, name
        if should_train:
            assert grads[name] is not None and grads[name].abs().sum() > 0, f"no gradient reached {name}"
        else:
            assert grads[name] is None, f"{name} should be frozen under {mode}"
    if mode == "scada":
        assert len(model.adapters) == 2
    else:
        assert len(model.adapters) == 0  # adapters exist only under SCADA


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    model = make_model(perturb_adapters=False).train()
    batch = tiny_batch(num_videos=2, queries_per_video=2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_activation_checkpointing_gives_the_same_gradients():
    model = make_model(train_text_encoder=True)
    batch = tiny_batch()
    plain = _grads_after_backward(model, batch)
    model.activation_checkpointing_enable()
    assert model.backbone.gradient_checkpointing  # transformers set it (and its function) on our backbone module
    # VideoMAE's own flags stay set, as transformers' contract wants, but each block is checkpointed once: by our
    # block loop, block + adapter in one call (a block checkpointed twice would run three times)
    assert all(layer.gradient_checkpointing for layer in model.video_model.encoder.layer)
    runs = []
    for index, layer in enumerate(model.video_model.encoder.layer):
        layer.register_forward_hook(lambda *_, i=index: runs.append(i))
    calls = []
    inner = model.backbone._gradient_checkpointing_func
    model.backbone._gradient_checkpointing_func = lambda *a, **k: calls.append(a[1]) or inner(*a, **k)
    checkpointed = _grads_after_backward(model, batch)
    # frozen blocks below the first adapter take no grad and are not checkpointed; from block 2's adapter on (block
    # 2 itself runs once per video, before the fan-out, with nothing to train) each unit is checkpointed once
    assert calls == [2, 3]
    assert sorted(runs) == [0, 1, 2, 3, 3]  # block 3: its forward and one recomputation
    # every_n_layers is honoured by our block loop too
    model.activation_checkpointing_enable(every_n_layers=2)
    model.backbone._gradient_checkpointing_func = lambda *a, **k: calls.append(a[1]) or inner(*a, **k)
    calls.clear()
    _grads_after_backward(model, batch)
    assert calls == [2]
    for name, grad in plain.items():
        if grad is None:
            assert checkpointed[name] is None, name
        else:
            torch.testing.assert_close(checkpointed[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_bf16_autocast_forward_and_backward():
    model = make_model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**tiny_batch())
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert out.pred_spans is None  # a training step with labels skips decoding
    assert model.decode(out.step_logits, out.step_offsets)[0].dtype == torch.float32
    model_bf16 = make_model().to(torch.bfloat16)
    batch = tiny_batch()
    batch["pixel_values"] = batch["pixel_values"].bfloat16()
    assert torch.isfinite(model_bf16(**batch).loss)


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path):
    model = make_model()
    batch = tiny_batch()
    with torch.no_grad():  # zero-initialised parts (adapters' up, pool query and location) would hide a bad reload
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.05)
        model.train()(**batch)  # running sentence statistics away from their initial values
    model.eval()
    before = model(**batch)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, TSGVConfig) and config.scada_layers == [2, 3]
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, TSGVForGrounding)
    after = loaded(**batch)
    torch.testing.assert_close(after.step_logits, before.step_logits, rtol=0, atol=0)
    torch.testing.assert_close(after.pred_spans, before.pred_spans, rtol=0, atol=0)
    assert not loaded.video_model.embeddings.patch_embeddings.projection.weight.requires_grad  # tuning re-applied


def reference_text_sdpa(path):
    return AutoModel.from_pretrained(path, attn_implementation="sdpa")


def test_from_backbones_keeps_pretrained_weights(tmp_path, minilm_path):
    torch.manual_seed(0)
    video = VideoMAEModel(tiny_config().backbone_config)
    video.save_pretrained(tmp_path / "video")
    model = TSGVForGrounding.from_backbones(video=tmp_path / "video", text=minilm_path, num_frames=8, max_spans=2)
    assert model.config.text_config.hidden_size == 384 and model.config.max_spans == 2
    for name, tensor in video.state_dict().items():
        torch.testing.assert_close(model.video_model.state_dict()[name], tensor, rtol=0, atol=0)
    reference_text = AutoModel.from_pretrained(minilm_path)
    for name, tensor in reference_text.state_dict().items():
        torch.testing.assert_close(model.text_model.state_dict()[name], tensor, rtol=0, atol=0)
    # adapters start as the identity
    assert all((adapter.up.weight == 0).all() for adapter in model.adapters.values())
    # each part keeps the attention it was loaded with
    eager = VideoMAEModel.from_pretrained(tmp_path / "video", attn_implementation="eager")
    mixed = TSGVForGrounding.from_backbones(video=eager, text=reference_text_sdpa(minilm_path), num_frames=8)
    assert mixed.video_model.config._attn_implementation == "eager"
    assert mixed.text_model.config._attn_implementation == "sdpa"
    # the real MiniLM tokenizer and encoder run through the model
    from transformers import AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(minilm_path)(["a red circle moves left"], return_tensors="pt")
    out = model(torch.randn(1, 8, 3, 32, 32), tokens["input_ids"], tokens["attention_mask"])
    assert out.pred_spans.shape == (1, 2, 2)
    # a backbone given as a path may be reloaded at another clip length; a model object may not
    longer = TSGVForGrounding.from_backbones(
        video=tmp_path / "video", text=reference_text, clip_frames=8, num_frames=16
    )
    assert longer.config.backbone_config.num_frames == 8
    with pytest.raises(ValueError, match="clip_frames=8 does not match"):
        TSGVForGrounding.from_backbones(video=video, text=reference_text, clip_frames=8, num_frames=16)


@pytest.mark.skipif(not hasattr(PreTrainedModel, "set_use_kernels"), reason="transformers < 5.25 has no Hub kernels")
def test_built_and_loaded_models_run_no_hub_kernels(tmp_path, minilm_path):
    from transformers.utils import is_kernels_available

    text = AutoModel.from_pretrained(minilm_path)  # transformers >= 5.25 loads with its Hub kernels on
    assert text.use_kernels == is_kernels_available()
    torch.manual_seed(0)
    model = TSGVForGrounding.from_backbones(
        video=VideoMAEModel(tiny_config().backbone_config), text=text, num_frames=8
    )
    model.save_pretrained(tmp_path / "model")
    loaded = TSGVForGrounding.from_pretrained(tmp_path / "model")
    for built in (model, loaded):  # a GPU would otherwise fetch them from the Hub at `train()` / `eval()`
        kernels_on = [type(m).__name__ for m in built.modules() if getattr(m, "use_kernels", False)]
        assert not kernels_on, kernels_on


def test_from_backbones_accepts_model_objects_and_unwraps_videomae_heads():
    from transformers import VideoMAEForVideoClassification

    torch.manual_seed(0)
    classifier = VideoMAEForVideoClassification(tiny_config().backbone_config)
    text = BertModel(tiny_config().text_config)
    model = TSGVForGrounding.from_backbones(video=classifier, text=text, num_frames=8, backbone_tuning="frozen")
    assert model.video_model is classifier.videomae and model.text_model is text
    with pytest.raises(ValueError, match="must be a VideoMAE model"):
        TSGVForGrounding.from_backbones(video=text, text=text)


def test_multi_window_labels_and_bad_inputs():
    model = make_model()
    batch = tiny_batch(num_videos=1, queries_per_video=2)
    batch["labels"] = torch.tensor([[[0.0, 0.2], [0.6, 0.9]], [[0.3, 0.5], [-100.0, -100.0]]])
    assert torch.isfinite(model(**batch).loss)
    batch["labels"] = torch.tensor([[0.5, 0.2], [0.1, 0.3]])
    with pytest.raises(ValueError, match="0 <= start <= end <= 1"):
        model(**batch)
    with pytest.raises(ValueError, match="pass query_video_index"):
        model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"])
    with pytest.raises(ValueError, match="multiple of clip_frames"):
        model(pixel_values=batch["pixel_values"][:, :6], input_ids=batch["input_ids"][:1])
    with pytest.raises(ValueError, match="expects 32x32"):
        model(pixel_values=torch.randn(1, 8, 3, 16, 16), input_ids=batch["input_ids"][:1])
    with pytest.raises(ValueError, match=r"query_video_index must lie in \[0, 1\)"):
        model(**{**batch, "labels": None, "query_video_index": torch.tensor([0, 1])})


def test_target_assignment_and_diou():
    windows = torch.tensor([[[0.0, 0.5], [0.25, 0.5]], [[0.9, 0.95], [-100.0, -100.0]]])
    positive, target = assign_targets(windows, num_steps=4)  # step centres 0.125, 0.375, 0.625, 0.875
    assert positive.tolist() == [[True, True, False, False], [False, False, False, True]]
    # step 1 lies in both windows of query 0: the shorter one is its target; the 0.05-long window keeps its central step
    assert target[0, 1].tolist() == [0.25, 0.5] and target[0, 0].tolist() == [0.0, 0.5]
    torch.testing.assert_close(target[1, 3], torch.tensor([0.9, 0.95]))
    same = torch.tensor([[0.2, 0.6]])
    assert diou_loss_1d(same, same).item() == pytest.approx(0.0, abs=1e-6)
    # disjoint spans: IoU 0, centres 0.1 and 0.75 (gap 0.65) over a hull of length 1.0
    assert diou_loss_1d(torch.tensor([[0.0, 0.2]]), torch.tensor([[0.5, 1.0]])).item() == pytest.approx(
        1.0 + 0.65**2, abs=1e-6
    )


def test_decoding_applies_temporal_nms():
    model = make_model(max_spans=3)
    # step centres 0.125, 0.375, 0.625, 0.875 (in normalised time)
    logits = torch.tensor([[3.0, 2.9, -1.0, 0.0]])
    offsets = torch.tensor([[[0.125, 0.375], [0.375, 0.125], [0.1, 0.1], [0.1, 0.1]]])  # steps 0 and 1 -> [0, 0.5]
    spans, scores = model.decode(logits, offsets)
    torch.testing.assert_close(spans[0, 0], torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(spans[0, 1], torch.tensor([0.775, 0.975]))  # the duplicate [0, 0.5] is suppressed
    torch.testing.assert_close(spans[0, 2], torch.tensor([0.525, 0.725]))
    assert (scores[0, 1:] <= scores[0, :-1]).all()
    model.config.nms_threshold = None
    spans, _ = model.decode(logits, offsets)
    torch.testing.assert_close(spans[0, 1], torch.tensor([0.0, 0.5]))


def test_config_hidden_size_reports_the_video_width():
    config = tiny_config()
    assert config.hidden_size == 32 and config.text_config.hidden_size == 24


def test_mean_pooling_and_frozen_backbone_fan_out_after_pooling():
    model = make_model(backbone_tuning="frozen", spatial_pooling="mean")
    assert model.spatial_pool is None and len(model.adapters) == 0
    top = CallCounter(model.video_model.encoder.layer[3])
    out = model(**tiny_batch(num_videos=1, queries_per_video=3))
    assert top.batch_sizes == [2]  # the whole backbone ran once for the video (2 clips), not once per query
    torch.testing.assert_close(out.video_hidden_states[0], out.video_hidden_states[2])  # same video, same features


def test_ground_in_query_chunks_reuses_the_shared_blocks():
    model = make_model()
    layers = model.video_model.encoder.layer
    batch = tiny_batch(num_videos=2, queries_per_video=3)
    together = model(**batch)
    shared = CallCounter(layers[model.backbone.first_query_block])
    states = model.encode_video(batch["pixel_values"])
    chunks = [
        model.ground(
            states,
            batch["input_ids"][part],
            batch["attention_mask"][part],
            batch["query_video_index"][part],
        )
        for part in (slice(0, 2), slice(2, 5), slice(5, 6))
    ]
    assert shared.batch_sizes == [4]  # 2 videos x 2 clips, once, whatever the number of `ground` calls
    torch.testing.assert_close(torch.cat([c.step_logits for c in chunks]), together.step_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.cat([c.pred_spans for c in chunks]), together.pred_spans, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="pass `sentence`"):
        model.backbone.query_features(states, None, batch["query_video_index"])


def assert_same_text_states(got, expected, mask):
    """(token states, sentence) pairs agree; padding positions are masked by every consumer (the cache zeroes them)."""
    keep = mask[..., None].bool()
    torch.testing.assert_close(got[0] * keep, expected[0] * keep, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-5)


def test_sentence_states_table_gives_the_encoder_states_and_the_model_skips_the_encoder():
    model = make_model().eval()
    batch = tiny_batch()
    ids = batch["input_ids"].clone()
    ids[1, 4:] = 0  # one right-padded query
    mask = (ids != 0).long()
    reference = model.encode_text(ids, mask)
    rows = [row[: int(n)].tolist() for row, n in zip(ids, mask.sum(1))]
    calls = []
    model.text_model.register_forward_hook(lambda *args: calls.append(1))

    table = SentenceStates.encode(model.text_model, rows + rows[:2] + [[]])  # repeats and empty ones skipped
    assert len(table) == len(rows) and all(row in table for row in rows)
    assert len(calls) == 2  # one unpadded batch per sentence length (6 and 4 tokens)
    assert table.states.device.type == "cpu" and model.training is False  # the encoder's mode is restored
    states = table.lookup(rows, ids.shape[1])
    assert states.shape == (*ids.shape, model.config.text_config.hidden_size)
    assert not states[1, 4:].any()  # zeros after the sentence
    calls.clear()
    served = model.encode_text(ids, mask, states)
    assert not calls  # the encoder does not run
    assert_same_text_states(served, reference, mask)
    assert table.lookup([*rows[:1], [5, 6, 7]], ids.shape[1]) is None  # one unknown sentence: the model encodes
    with pytest.raises(ValueError, match="do not match input_ids"):
        model.encode_text(ids[:, :3], mask[:, :3], states)


def test_the_collator_serves_text_states_from_the_table(minilm_path):
    from modeling_tsgv import TSGVProcessor
    from modeling_tsgv.data import VideoCentricCollator

    processor = TSGVProcessor.from_text_encoder(minilm_path, image_size=32)
    config = tiny_config()
    config.text_config.vocab_size = 30522
    model = TSGVForGrounding(config).eval()
    sentences = ["the red circle moves left", "a blue square appears", "it grows"]
    rows = [
        {"pixel_values": torch.zeros(8, 3, 32, 32), "duration_s": 10.0, "video_id": str(v), "sentences": s,
         "spans_s": [[[1.0, 2.0]]] * len(s)}
        for v, s in enumerate([sentences[:2], sentences[2:]])
    ]  # fmt: skip
    ids = processor.tokenizer(sentences, truncation=True, max_length=processor.max_text_length)["input_ids"]
    collator = VideoCentricCollator(processor, text_states=SentenceStates.encode(model.text_model, ids))
    batch = collator(rows)
    assert batch["text_states"].shape == (*batch["input_ids"].shape, config.text_config.hidden_size)
    reference = model.encode_text(batch["input_ids"], batch["attention_mask"])
    assert_same_text_states(
        model.encode_text(batch["input_ids"], batch["attention_mask"], batch["text_states"]),
        reference,
        batch["attention_mask"],
    )
    collator.text_states = SentenceStates.encode(model.text_model, ids[:1])  # sentences it lacks: no states
    assert "text_states" not in collator(rows)


# ---------------------------------------------------------------------------------------------------------------------
# The training step's speed fixes (#13): same numbers as the straightforward versions, one graph for torch.compile
# ---------------------------------------------------------------------------------------------------------------------


def _rank_one_query_reference(spans, scores, k, threshold):
    """The per-query ranking as it was written before batching: torchvision nms, kept first, then the suppressed."""
    from torchvision.ops import nms

    order = scores.argsort(descending=True, stable=True)
    if threshold is not None:
        boxes = torch.stack([spans[:, 0], torch.zeros_like(scores), spans[:, 1], torch.ones_like(scores)], -1)
        keep = nms(boxes, scores, threshold)
        suppressed = torch.ones_like(scores, dtype=torch.bool)
        suppressed[keep] = False
        order = torch.cat([keep, order[suppressed[order]]])
    chosen = order[:k]
    return spans[chosen], torch.cummin(scores[chosen], dim=0).values


@pytest.mark.parametrize("threshold", [None, 0.3, 0.7])
def test_batched_ranking_matches_ranking_each_query_alone(threshold):
    from modeling_tsgv.spans import rank_spans_batched

    generator = torch.Generator().manual_seed(0)
    starts = torch.rand(6, 20, generator=generator)
    spans = torch.stack([starts, starts + 0.3 * torch.rand(6, 20, generator=generator)], -1)
    scores = torch.rand(6, 20, generator=generator)
    best_spans, best_scores = rank_spans_batched(spans, scores, 7, threshold)
    assert best_spans.shape == (6, 7, 2) and best_scores.shape == (6, 7)
    for query in range(6):
        expected_spans, expected_scores = _rank_one_query_reference(spans[query], scores[query], 7, threshold)
        torch.testing.assert_close(best_spans[query], expected_spans)
        torch.testing.assert_close(best_scores[query], expected_scores)


def _loss_reference(model, step_logits, step_offsets, labels):
    """The loss written with boolean indexing (as before it was made mask-based)."""
    from torchvision.ops import sigmoid_focal_loss

    from modeling_tsgv.loss_tsgv import normalize_labels
    from modeling_tsgv.spans import offsets_to_spans

    windows = normalize_labels(labels)
    has_label = (windows[..., 0] >= 0).any(-1)
    positive, target = assign_targets(windows, step_logits.shape[1])
    num_pos = positive.sum().clamp(min=1).float()
    cfg = model.config
    focal = sigmoid_focal_loss(
        step_logits[has_label], positive[has_label].float(), cfg.focal_alpha, cfg.focal_gamma, "sum"
    )
    spans = offsets_to_spans(step_offsets)[positive]
    diou = diou_loss_1d(spans, target[positive]).sum()
    l1 = (spans - target[positive]).abs().sum(-1).sum()
    return (cfg.loss_focal_weight * focal + cfg.loss_diou_weight * diou + cfg.loss_l1_weight * l1) / num_pos


def test_mask_based_loss_equals_the_boolean_indexed_one_with_unlabelled_queries():
    model = make_model()
    generator = torch.Generator().manual_seed(1)
    step_logits = torch.randn(4, 8, generator=generator, requires_grad=True)
    step_offsets = torch.rand(4, 8, 2, generator=generator).requires_grad_(True)
    labels = torch.tensor(
        [
            [[0.1, 0.4], [-100, -100]],
            [[0.5, 0.9], [0.0, 0.2]],
            [[-100, -100], [-100, -100]],
            [[0.3, 0.3], [-100, -100]],
        ]
    )
    loss, _ = model.compute_loss(step_logits, step_offsets, labels)
    grads = torch.autograd.grad(loss, [step_logits, step_offsets])
    expected = _loss_reference(model, step_logits, step_offsets, labels)
    expected_grads = torch.autograd.grad(expected, [step_logits, step_offsets])
    torch.testing.assert_close(loss, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("training", [True, False])
def test_the_whole_model_compiles_as_one_graph_and_matches_eager(training):
    """torch.compile(fullgraph=True) fails on any graph break: a value read back to Python (`.item()`, `bool()`),
    boolean indexing, data-dependent shapes. aot_eager traces forward and backward without a C++ compiler."""
    torch._dynamo.reset()
    model = make_model().train(training)
    batch = tiny_batch(num_videos=2, queries_per_video=3)  # includes the gather from videos to queries
    eager = model(**batch)
    compiled_model = torch.compile(model, backend="aot_eager", fullgraph=True)
    compiled = compiled_model(**batch)
    torch.testing.assert_close(compiled.loss, eager.loss)
    torch.testing.assert_close(compiled.step_logits, eager.step_logits)
    if training:
        grads = torch.autograd.grad(eager.loss, [p for p in model.parameters() if p.requires_grad])
        compiled_grads = torch.autograd.grad(compiled.loss, [p for p in model.parameters() if p.requires_grad])
        for got, want in zip(compiled_grads, grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    else:
        torch.testing.assert_close(compiled.pred_spans, eager.pred_spans)


def test_compiled_model_with_text_states_matches_eager():
    """Training as run_grounding.py does (frozen text encoder, its states served by the collator): no break in the
    compiled graph, the loss the eager one."""
    torch._dynamo.reset()
    model = make_model().train()
    batch = tiny_batch(num_videos=2, queries_per_video=3)
    rows = [row.tolist() for row in batch["input_ids"]]
    batch["text_states"] = SentenceStates.encode(model.text_model, rows).lookup(rows, batch["input_ids"].shape[1])
    eager = model(**batch).loss
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(**batch).loss
    torch.testing.assert_close(compiled, eager)


def test_sentence_pooling_equals_keys_times_query_without_per_query_copies():
    """The folded key projection and the einsums give the plain formula softmax(<k(t), q(s)> / sqrt(D)) weighted sum,
    with per-query tokens and with tokens shared per video (`query_video_index`)."""
    from modeling_tsgv.modeling_tsgv import SentenceSpatialPool

    torch.manual_seed(0)
    pool = SentenceSpatialPool(tiny_config(spatial_pool_location=False))
    torch.nn.init.normal_(pool.query.weight, std=0.3)
    torch.nn.init.normal_(pool.key.bias, std=0.3)
    tokens = torch.randn(3, 4, 4, 32)  # (B_v, L_t, hw, D)
    sentence, index = torch.randn(5, 24), torch.tensor([0, 0, 1, 2, 2])
    keys = pool.key(tokens)[index]  # the plain formula, with every per-query copy
    logits = (keys @ pool.query(sentence)[:, None, :, None]).squeeze(-1) / 32**0.5
    expected = (logits.softmax(-1)[..., None] * tokens[index]).sum(2)  # (B_q, L_t, D)
    torch.testing.assert_close(pool(tokens, sentence, index), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pool(tokens[index], sentence), expected, rtol=1e-5, atol=1e-5)


def test_attention_location_reads_where_the_weights_sit():
    """All weight on one patch: its centre on the [-1, 1] grid (row-major, x along a row), no spread; uniform weights:
    the grid's centre, the mean squared distance of the patch centres, no peak; a grid that does not fit: ValueError."""
    from modeling_tsgv.layers_tsgv import attention_location

    grid = 4
    weights = torch.zeros(2, grid * grid)
    weights[0, 1 * grid + 3] = 1.0  # row 1, column 3
    weights[1] = 1.0 / grid**2
    logits = torch.stack([torch.full((grid * grid,), -50.0).index_fill(0, torch.tensor([7]), 50.0), torch.zeros(16)])
    out = attention_location(weights, logits, grid)  # (2, 4): x, y, spread, peak
    torch.testing.assert_close(out[0, :3], torch.tensor([1.0, -1.0 / 3, 0.0]))
    assert out[0, 3] > 40  # one token matched far above the uniform level
    axis = torch.linspace(-1, 1, grid)
    torch.testing.assert_close(out[1], torch.tensor([0.0, 0.0, 2 * axis.pow(2).mean().item(), 0.0]))
    with pytest.raises(ValueError, match="15 spatial tokens per step, expected 4x4"):
        attention_location(torch.ones(15) / 15, torch.zeros(15), grid)
