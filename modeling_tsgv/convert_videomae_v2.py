"""Convert a VideoMAE V2 checkpoint (the family of the paper's ViT-g) into a transformers VideoMAE checkpoint.

    python -m modeling_tsgv.convert_videomae_v2 SRC OUT [--num_frames 16] [--image_size 224] [--num_heads H]

VideoMAE V2 is published in OpenGVLab's own layout, not transformers': on the Hub as remote code (`VideoMAEv2`
models whose config.json holds a `model_config` dict and whose weights sit under `model.`), and as the released
`.pth` files (weights under `module` / `model`, or bare; pre-training files under `encoder.`). The network is the
VideoMAE ViT, so its weights map one to one onto `VideoMAEModel`, once the fused query/key/value projection is
split (transformers keeps three, V2 one with separate query and value biases):

| VideoMAE V2                         | transformers VideoMAE (`VideoMAEModel`)                        |
|-------------------------------------|----------------------------------------------------------------|
| `patch_embed.proj`                  | `embeddings.patch_embeddings.projection`                       |
| `blocks.i.norm1` / `norm2`          | `encoder.layer.i.layernorm_before` / `layernorm_after`         |
| `blocks.i.attn.qkv.weight` (3D, D)  | `encoder.layer.i.attention.attention.{query,key,value}.weight` |
| `blocks.i.attn.q_bias` / `v_bias`   | `...attention.attention.query.bias` / `value.bias`             |
| `blocks.i.attn.proj`                | `encoder.layer.i.attention.output.dense`                       |
| `blocks.i.mlp.fc1` / `fc2`          | `encoder.layer.i.intermediate.dense` / `output.dense`          |
| `norm`, or `fc_norm` (mean pooling) | `layernorm` (per token; saved with `use_mean_pooling=False`)   |
| `head`, `decoder.*`                 | not kept (a grounding model reads the tokens)                  |

Layer norms take V2's epsilon (1e-6). What `VideoMAEModel` cannot express is refused in one line: layer scale
(`gamma_1` / `gamma_2`), cosine attention (`attn.scale`), learnt positional embeddings. Sizes come from the remote
code's `model_config` when there is one, otherwise from the weights' shapes (heads: `--num_heads`, or the usual count
for the width). Frames are normalised as for every VideoMAE (ImageNet mean / std), as V2's fine-tuning did.
"""

import argparse
import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import VideoMAEConfig, VideoMAEModel

V2_LAYER_NORM_EPS = 1e-6  # V2's norm_layer is LayerNorm(eps=1e-6)
HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}  # ViT-S / B / L / H / g, as V2 builds them
PREFIXES = ("module.", "model.", "encoder.", "backbone.")


class ConversionError(ValueError):
    """A VideoMAE V2 checkpoint that cannot be converted; the message names the file and why, in one line."""


def read_state_dict(source: Path) -> tuple[dict, dict]:
    """(weights, the remote code's `model_config` or {}) of a V2 folder or weights file (.safetensors, .pth/.bin:
    read with `weights_only=True`, so no pickled code runs), without the wrappers' key prefixes."""
    model_config = {}
    if source.is_dir():
        config_file = source / "config.json"
        if config_file.is_file():
            model_config = json.loads(config_file.read_text()).get("model_config") or {}
        files = [source / name for name in ("model.safetensors", "pytorch_model.bin") if (source / name).is_file()]
        if not files:
            raise ConversionError(f"{source}: no model.safetensors or pytorch_model.bin in the folder")
        source = files[0]
    if source.suffix == ".safetensors":
        weights = load_file(str(source))
    else:
        weights = torch.load(str(source), map_location="cpu", weights_only=True)
    for wrapper in ("module", "model", "state_dict"):  # the released .pth files wrap the state dict
        if isinstance(weights.get(wrapper), dict):
            weights = weights[wrapper]
    return {strip_prefixes(key): value for key, value in weights.items()}, model_config


def strip_prefixes(key: str) -> str:
    """`model.blocks.0...` / `module.encoder.blocks.0...` -> `blocks.0...` (decoder keys keep `decoder.`)."""
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def videomae_config(weights: dict, model_config: dict, source, **sizes) -> VideoMAEConfig:
    """The `VideoMAEConfig` of V2 weights: widths and depth from their shapes, the rest from `model_config` (remote
    code) or `sizes` (num_frames, image_size, num_heads); ConversionError for what VideoMAE cannot express."""
    if "patch_embed.proj.weight" not in weights:
        raise ConversionError(f"{source}: no patch_embed.proj.weight: not a VideoMAE V2 checkpoint")
    unsupported = sorted({re.sub(r"blocks\.\d+\.", "blocks.N.", k) for k in weights if
                          re.search(r"gamma_[12]$|attn\.scale$", k) or k == "pos_embed"})  # fmt: skip
    if unsupported:
        raise ConversionError(
            f"{source}: {', '.join(unsupported)} (layer scale, cosine attention or learnt positions) has no "
            "counterpart in transformers' VideoMAE"
        )
    width, _, tubelet, patch, _ = weights["patch_embed.proj.weight"].shape
    depth = 1 + max(int(m.group(1)) for k in weights if (m := re.match(r"blocks\.(\d+)\.", k)))
    heads = sizes.get("num_heads") or model_config.get("num_heads") or HEADS_BY_WIDTH.get(width)
    if not heads:
        raise ConversionError(f"{source}: width {width} has no usual head count: give --num_heads")
    return VideoMAEConfig(
        image_size=sizes.get("image_size") or model_config.get("img_size", 224),
        patch_size=patch,
        num_frames=sizes.get("num_frames") or model_config.get("num_frames") or model_config.get("all_frames", 16),
        tubelet_size=tubelet,
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=weights["blocks.0.mlp.fc1.weight"].shape[0],
        qv_bias="blocks.0.attn.q_bias" in weights,
        layer_norm_eps=V2_LAYER_NORM_EPS,
        use_mean_pooling=False,  # the final norm (V2's norm or fc_norm) is kept, per token
    )


def block_weights(weights: dict, i: int) -> dict:
    """Block `i`'s weights renamed into `VideoMAEModel`'s `encoder.layer.i.*`, the fused qkv projection split."""
    src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
    query, key, value = weights[src + "attn.qkv.weight"].chunk(3, dim=0)
    out = {
        dst + "attention.attention.query.weight": query,
        dst + "attention.attention.key.weight": key,
        dst + "attention.attention.value.weight": value,
    }
    if src + "attn.q_bias" in weights:
        out[dst + "attention.attention.query.bias"] = weights[src + "attn.q_bias"]
        out[dst + "attention.attention.value.bias"] = weights[src + "attn.v_bias"]
    renames = {
        "norm1": "layernorm_before",
        "norm2": "layernorm_after",
        "attn.proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    for old, new in renames.items():
        for leaf in ("weight", "bias"):
            out[f"{dst}{new}.{leaf}"] = weights[f"{src}{old}.{leaf}"]
    return out


def convert_weights(weights: dict, config: VideoMAEConfig, source) -> dict:
    """V2 weights -> a `VideoMAEModel` state dict (the table in the module docstring)."""
    out = {
        "embeddings.patch_embeddings.projection.weight": weights["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": weights["patch_embed.proj.bias"],
    }
    for i in range(config.num_hidden_layers):
        out.update(block_weights(weights, i))
    final = "fc_norm" if "fc_norm.weight" in weights else "norm"
    if f"{final}.weight" not in weights:
        raise ConversionError(f"{source}: neither norm nor fc_norm: the encoder's final norm is missing")
    out["layernorm.weight"], out["layernorm.bias"] = weights[f"{final}.weight"], weights[f"{final}.bias"]
    return out


def convert(source, output, **sizes) -> VideoMAEModel:
    """Convert the V2 checkpoint at `source` (folder or weights file) into a `VideoMAEModel` saved in `output`
    (config.json + model.safetensors, loadable by `AutoModel` and by `run_grounding.py --video_model OUTPUT`).
    `sizes`: num_frames, image_size, num_heads where the checkpoint does not say. Returns the model."""
    source = Path(source)
    weights, model_config = read_state_dict(source)
    config = videomae_config(weights, model_config, source, **sizes)
    state = convert_weights(weights, config, source)
    model = VideoMAEModel(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_embeddings")]  # a fixed sinusoidal table
    if missing or unexpected:
        raise ConversionError(f"{source}: the converted weights do not fit VideoMAE: {(missing or unexpected)[0]}")
    os.makedirs(output, exist_ok=True)
    model.save_pretrained(output)
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a VideoMAE V2 folder (Hub remote code) or weights file (.pth / .safetensors)")
    parser.add_argument("output", help="folder for the transformers VideoMAE checkpoint")
    parser.add_argument("--num_frames", type=int, help="frames per clip (default: the checkpoint's, else 16)")
    parser.add_argument("--image_size", type=int, help="frame side in px (default: the checkpoint's, else 224)")
    parser.add_argument("--num_heads", type=int, help="attention heads (default: the checkpoint's or the usual)")
    args = parser.parse_args(argv)
    try:
        model = convert(args.source, args.output, num_frames=args.num_frames, image_size=args.image_size,
                        num_heads=args.num_heads)  # fmt: skip
    except ConversionError as error:
        parser.exit(2, f"convert_videomae_v2: {error}\n")
    size = sum(p.numel() for p in model.parameters())
    print(f"{args.output}: VideoMAEModel, {model.config.num_hidden_layers} blocks x {model.config.hidden_size}, "
          f"{size / 1e6:.1f}M parameters")  # fmt: skip


if __name__ == "__main__":
    main()
