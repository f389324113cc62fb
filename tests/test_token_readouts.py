"""benchmarks/token_readouts.py: the tokens it probes are the ones the grounding head reads."""

import json
import sys

import torch
from conftest import REPO_ROOT, tiny_config

from modeling_tsgv import TSGVForGrounding, TSGVProcessor

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import token_readouts  # noqa: E402


def tiny_model(minilm_path, **overrides):
    torch.manual_seed(0)
    config = tiny_config(**overrides)
    config.text_config.vocab_size = 30522  # MiniLM's tokenizer
    return TSGVForGrounding(config).eval(), TSGVProcessor.from_text_encoder(minilm_path, image_size=32)


def test_a_frozen_model_is_probed_on_its_backbone_tokens_after_the_final_norm(minilm_path):
    model, processor = tiny_model(minilm_path, backbone_tuning="frozen")
    clips = torch.randn(3, 4, 3, 32, 32)  # 3 one-clip videos of 4 frames
    tokens = token_readouts.GroundingTokens(model, processor, ["a red circle spins"])(clips).last_hidden_state
    with torch.no_grad():
        expected = model.encode_video(clips).hidden_states  # all blocks and the final norm: (B_v*C, N, D)
    assert tokens.shape == (3, 8, 32)  # 2 time steps x 4 patches per clip
    torch.testing.assert_close(tokens, expected)


def test_scada_tokens_depend_on_the_sentence_each_clip_is_given_in_turn(minilm_path):
    model, processor = tiny_model(minilm_path, backbone_tuning="scada")
    with torch.no_grad():  # a FiLM that does something (a fresh adapter starts as the identity)
        for parameter in model.adapters.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    clip = torch.randn(1, 4, 3, 32, 32).expand(2, -1, -1, -1, -1)  # the same clip twice
    tokens = token_readouts.GroundingTokens(model, processor, ["a red circle spins", "the blue star shrinks"])
    both = tokens(clip).last_hidden_state
    assert not torch.allclose(both[0], both[1])  # two sentences, two sets of tokens
    again = tokens(clip[:1]).last_hidden_state  # the third clip gets the first sentence again
    torch.testing.assert_close(again[0], both[0], rtol=1e-3, atol=1e-3)  # padded alone vs beside a longer one
    assert not torch.allclose(again[0], both[1], rtol=1e-3, atol=1e-3)


def test_training_sentences_are_distinct_seeded_and_from_the_world(tmp_path):
    (tmp_path / "annotations").mkdir()
    rows = [{"sentence": f"object {i % 5} moves"} for i in range(20)]
    (tmp_path / "annotations" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn = token_readouts.training_sentences(tmp_path, 3, seed=1)
    assert len(set(drawn)) == 3 and set(drawn) <= {r["sentence"] for r in rows}
    assert drawn == token_readouts.training_sentences(tmp_path, 3, seed=1)
    assert len(token_readouts.training_sentences(tmp_path, 50)) == 5  # no more than there are
