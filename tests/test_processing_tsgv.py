"""TSGVProcessor with the offline MiniLM tokenizer: encoding, seconds out, save/load, AutoProcessor."""

import pytest
import torch
from conftest import tiny_config
from transformers import AutoProcessor

from modeling_tsgv import TSGVForGrounding, TSGVProcessor


@pytest.fixture(scope="module")
def processor(minilm_path):
    return TSGVProcessor.from_text_encoder(minilm_path, image_size=32, max_text_length=16)


def test_encodes_videos_and_queries(processor):
    videos = [torch.randint(0, 256, (8, 48, 64, 3), dtype=torch.uint8) for _ in range(2)]
    batch = processor(
        videos=videos,
        text=["the red circle moves left", "a blue square grows", "it spins"],
        query_video_index=[0, 0, 1],
        return_tensors="pt",
    )
    assert batch["pixel_values"].shape == (2, 8, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["input_ids"].shape[0] == 3 and batch["input_ids"].shape[1] <= 16
    assert batch["query_video_index"].tolist() == [0, 0, 1]
    # frames are normalised, not raw 0..255 values
    assert batch["pixel_values"].abs().max() < 5


def test_call_takes_the_sub_processors_options_as_transformers_processors_do(processor):
    sentences = ["the red circle moves left across the whole frame", "it spins"]
    plain = processor(text=sentences)  # return_tensors defaults to None: lists, as from any transformers processor
    assert isinstance(plain["input_ids"], list) and plain["query_video_index"] == [0, 1]
    assert len(plain["input_ids"][0]) == len(plain["input_ids"][1]) <= 16  # padded to the longest, max_text_length
    assert "token_type_ids" not in plain
    flat = processor(text=sentences, padding="max_length", max_length=12, return_tensors="pt")
    nested = processor(text=sentences, text_kwargs={"padding": "max_length", "max_length": 12}, return_tensors="pt")
    assert flat["input_ids"].shape == nested["input_ids"].shape == (2, 12)
    assert torch.equal(flat["input_ids"], nested["input_ids"]) and flat["query_video_index"].dtype == torch.long
    with pytest.raises(ValueError, match="passed two times"):
        processor(text=sentences, max_length=12, text_kwargs={"max_length": 10})
    video = torch.randint(0, 256, (8, 48, 64, 3), dtype=torch.uint8)
    raw = processor(videos=[video], do_normalize=False, return_tensors="pt")["pixel_values"]
    normalised = processor(videos=[video], videos_kwargs={"do_normalize": True}, return_tensors="pt")["pixel_values"]
    assert raw.min() >= 0 and raw.max() <= 1 and normalised.min() < 0  # rescaled only vs ImageNet-normalised
    with pytest.raises(ValueError, match="give videos, text"):
        processor()


def test_rejects_empty_queries_and_ragged_videos(processor):
    with pytest.raises(ValueError, match="query 2 is empty"):  # numbered from 1, as in every message
        processor(text=["fine", "  "])
    with pytest.raises(ValueError, match="same number of sampled frames"):
        processor(videos=[torch.zeros(8, 32, 32, 3, dtype=torch.uint8), torch.zeros(4, 32, 32, 3, dtype=torch.uint8)])


def test_post_process_grounding_returns_clipped_seconds_per_query(processor):
    outputs = {
        "pred_spans": torch.tensor([[[0.1, 0.5], [0.0, 1.0]], [[0.25, 0.75], [0.9, 1.0]], [[0.5, 1.0], [0.0, 0.1]]]),
        "pred_scores": torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.6, 0.5]]),
    }
    results = processor.post_process_grounding(outputs, durations_s=[30.0, 10.0], query_video_index=[0, 0, 1], top_k=1)
    assert results[0] == [{"start": pytest.approx(3.0), "end": pytest.approx(15.0), "score": pytest.approx(0.9)}]
    assert results[2][0]["end"] == pytest.approx(10.0)
    all_spans = processor.post_process_grounding(outputs, durations_s=[30.0, 30.0, 10.0])
    assert [len(r) for r in all_spans] == [2, 2, 2] and all_spans[0][1]["end"] == 30.0
    with pytest.raises(ValueError, match="2 durations for 3 queries"):
        processor.post_process_grounding(outputs, durations_s=[30.0, 10.0])


def test_model_and_processor_round_trip_through_auto_classes(processor, tmp_path):
    model = TSGVForGrounding(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, TSGVProcessor) and loaded.max_text_length == 16
    video = torch.randint(0, 256, (8, 40, 40, 3), dtype=torch.uint8)
    a, b = (
        processor(videos=[video], text="a person opens the fridge", return_tensors="pt"),
        loaded(videos=[video], text="a person opens the fridge", return_tensors="pt"),
    )
    torch.testing.assert_close(a["pixel_values"], b["pixel_values"])
    assert a["input_ids"].tolist() == b["input_ids"].tolist()
