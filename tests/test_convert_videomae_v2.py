"""VideoMAE V2 -> transformers VideoMAE: the key map tested on a tiny random model of V2's layout, whose forward (the
ViT block with a fused qkv projection and separate query / value biases) is written out here, so that the converted
model must compute the same tokens."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModel
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

from modeling_tsgv.convert_videomae_v2 import ConversionError, convert, main


class V2Block(nn.Module):
    """One block of V2's layout: pre-norm attention with fused qkv (q / v biases apart), pre-norm MLP."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn.q_bias, self.attn.v_bias = nn.Parameter(torch.randn(dim)), nn.Parameter(torch.randn(dim))
        self.attn.proj = nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        bias = torch.cat([self.attn.q_bias, torch.zeros_like(self.attn.v_bias), self.attn.v_bias])
        qkv = nn.functional.linear(self.norm1(x), self.attn.qkv.weight, bias)
        q, k, v = qkv.view(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads)).softmax(-1)
        x = x + self.attn.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))
        return x + self.mlp.fc2(nn.functional.gelu(self.mlp.fc1(self.norm2(x))))


class TinyVideoMAEv2(nn.Module):
    """V2's VisionTransformer layout (patch_embed, blocks, norm / fc_norm, head) at a tiny size."""

    def __init__(self, dim=32, depth=2, heads=4, frames=4, size=32, patch=16, mean_pooling=True):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(3, dim, (2, patch, patch), (2, patch, patch))
        self.blocks = nn.ModuleList(V2Block(dim, heads, 2 * dim) for _ in range(depth))
        final = nn.LayerNorm(dim, eps=1e-6)
        if mean_pooling:
            self.fc_norm = final
        else:
            self.norm = final
        self.head = nn.Linear(dim, 7)
        self.register_buffer("table", get_sinusoid_encoding_table((frames // 2) * (size // patch) ** 2, dim), False)
        for module in self.modules():  # norms away from (1, 0), so that a lost one shows
            if isinstance(module, nn.LayerNorm):
                nn.init.normal_(module.weight, 1.0, 0.2)
                nn.init.normal_(module.bias, 0.0, 0.2)

    def tokens(self, video):
        """video (B, 3, T, H, W) -> per-token features after the final norm (B, N, D)."""
        x = self.patch_embed.proj(video).flatten(2).transpose(1, 2) + self.table
        for block in self.blocks:
            x = block(x)
        return (self.fc_norm if hasattr(self, "fc_norm") else self.norm)(x)


@pytest.mark.parametrize("mean_pooling", [True, False])
def test_a_hub_remote_code_folder_converts_to_a_videomae_that_computes_the_same_tokens(tmp_path, mean_pooling):
    torch.manual_seed(0)
    v2 = TinyVideoMAEv2(mean_pooling=mean_pooling).eval()
    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "VideoMAEv2_Base", "auto_map": {"AutoModel": "modeling_videomaev2.VideoMAEv2"},
        "model_config": {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 4,
                         "num_frames": 4, "tubelet_size": 2, "use_mean_pooling": mean_pooling},
    }))  # fmt: skip
    save_file({f"model.{k}": v.contiguous() for k, v in v2.state_dict().items()}, str(folder / "model.safetensors"))
    convert(folder, tmp_path / "hf")
    converted = AutoModel.from_pretrained(tmp_path / "hf").eval()
    assert converted.config.model_type == "videomae" and converted.config.layer_norm_eps == 1e-6
    video = torch.randn(2, 4, 3, 32, 32)  # (B, T, 3, H, W), as VideoMAE takes it
    with torch.no_grad():
        expected = v2.tokens(video.transpose(1, 2))
        torch.testing.assert_close(converted(video).last_hidden_state, expected, rtol=1e-4, atol=1e-5)


def test_a_released_pth_file_converts_with_its_wrapper_and_sizes_from_the_weights(tmp_path, capsys):
    torch.manual_seed(1)
    v2 = TinyVideoMAEv2().eval()
    weights = {f"encoder.{k}": v for k, v in v2.state_dict().items()}  # a pre-training file's encoder
    weights["decoder.blocks.0.norm1.weight"] = torch.ones(16)  # and its decoder, which is not kept
    torch.save({"module": weights}, tmp_path / "vit_tiny_pt.pth")
    # 32 wide is no usual ViT: the head count must be given
    with pytest.raises(SystemExit):
        main([str(tmp_path / "vit_tiny_pt.pth"), str(tmp_path / "hf")])
    assert "give --num_heads" in capsys.readouterr().err
    main([str(tmp_path / "vit_tiny_pt.pth"), str(tmp_path / "hf"), "--num_heads", "4", "--num_frames", "4",
          "--image_size", "32"])  # fmt: skip
    assert "2 blocks x 32" in capsys.readouterr().out
    converted = AutoModel.from_pretrained(tmp_path / "hf").eval()
    video = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            converted(video).last_hidden_state, v2.tokens(video.transpose(1, 2)), rtol=1e-4, atol=1e-5
        )


def test_what_videomae_cannot_express_is_refused_in_one_line(tmp_path):
    weights = TinyVideoMAEv2().state_dict()
    weights["blocks.0.gamma_1"] = torch.ones(32)  # layer scale
    save_file(weights, str(tmp_path / "scaled.safetensors"))
    with pytest.raises(ConversionError, match="blocks.N.gamma_1.*no counterpart") as error:
        convert(tmp_path / "scaled.safetensors", tmp_path / "out", num_heads=4)
    assert "\n" not in str(error.value) and "scaled.safetensors" in str(error.value)
    save_file({"head.weight": torch.zeros(7, 32)}, str(tmp_path / "head_only.safetensors"))
    with pytest.raises(ConversionError, match="not a VideoMAE V2 checkpoint"):
        convert(tmp_path / "head_only.safetensors", tmp_path / "out")
