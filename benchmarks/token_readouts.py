"""What the tokens a trained grounding model reads carry: stage 1's linear probes on its backbone after training.

For each trained run folder (a `TSGVForGrounding` saved by `run_grounding.py`), the backbone's last tokens — after
its final layernorm, as the grounding head reads them — are probed with stage 1's read-outs
(`pretraining.linear_probe_readouts`: closed-form ridge probes fitted on half of the held-out stage-1 videos and
scored on the other half: colour, shape, action and acting-or-not balanced accuracy, coverage correlation). A
frozen run's tokens are its stage-1 backbone's; `partial` / `full` show what end-to-end training changed in the
backbone itself; a SCADA run's tokens depend on the sentence, so each clip is given a sentence drawn (seeded) from
the synthetic world's training queries — not about that clip: the probe asks what the adapters add in general, not
what one sentence picks out.

The clips are a stage-1 frame cache's held-out videos (the ones the backbone cards' read-outs use), built by
`python -m modeling_tsgv.synthetic.pretraining ...` (the command in the backbone's stage1.json):

    python benchmarks/token_readouts.py outputs/study/runs/<arm> [more run folders] \
        [--clips outputs/stage1-recognition/cache/held_out] [--world outputs/synthetic/easy] [--json out.json]
"""

import argparse
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from modeling_tsgv import TSGVForGrounding, TSGVProcessor
from modeling_tsgv.synthetic.pretraining import READOUT_NAMES, ClipDataset, FrameCache, linear_probe_readouts


class GroundingTokens(nn.Module):
    """A trained model's last backbone tokens as a `VideoMAEModel`-like callable (what `linear_probe_readouts`
    reads): `forward(pixel_values (B, clip_frames, 3, S, S))` -> `.last_hidden_state` (B, N, D), each clip its own
    one-clip video, with the i-th clip of the whole probe set conditioned on `sentences[i % len(sentences)]` when the
    model conditions its backbone on the sentence."""

    def __init__(self, model: TSGVForGrounding, processor: TSGVProcessor, sentences: list[str]):
        super().__init__()
        self.model, self.processor, self.sentences, self.seen = model, processor, sentences, 0

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        batch = pixel_values.shape[0]
        chosen = [self.sentences[(self.seen + i) % len(self.sentences)] for i in range(batch)]
        self.seen += batch
        text = self.processor.tokenizer(chosen, padding=True, return_tensors="pt")
        last_block = self.model.config.backbone_config.num_hidden_layers  # hidden_states: embeddings, blocks, head
        output = self.model(
            pixel_values=pixel_values, input_ids=text["input_ids"], attention_mask=text["attention_mask"],
            output_hidden_states=[last_block],
        )  # fmt: skip
        tokens = output.hidden_states[last_block]  # the last block's output, (B, N, D): one query per one-clip video
        norm = self.model.video_model.layernorm
        return SimpleNamespace(last_hidden_state=norm(tokens) if norm is not None else tokens)


def training_sentences(world: Path, count: int, seed: int = 0) -> list[str]:
    """`count` sentences drawn (without replacement where there are enough, seeded) from `world`'s train.jsonl."""
    rows = [json.loads(line) for line in (world / "annotations" / "train.jsonl").read_text().splitlines()]
    sentences = sorted({row["sentence"] for row in rows})
    rng = random.Random(seed)
    return rng.sample(sentences, min(count, len(sentences))) if sentences else []


def readouts_of_run(run: Path, clips: ClipDataset, world: Path) -> dict:
    """{"run", "backbone_tuning", "film", READOUT_NAMES keys...} for one trained run folder."""
    model = TSGVForGrounding.from_pretrained(run).eval()
    if model.config.image_size != clips.cache.info["key"]["settings"]["image_size"]:
        raise SystemExit(f"{run}: the model reads {model.config.image_size}-px frames, the clips are not that size")
    processor = TSGVProcessor.from_pretrained(run)
    tokens = GroundingTokens(model, processor, training_sentences(world, 512))
    figures = linear_probe_readouts(tokens, clips)
    film = model.config.backbone_tuning == "scada" and model.config.scada_film
    return {"run": str(run), "backbone_tuning": model.config.backbone_tuning, "film": film, **figures}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="trained run folders (saved TSGVForGrounding)")
    parser.add_argument("--clips", type=Path, default=Path("outputs/stage1-recognition/cache/held_out"))
    parser.add_argument("--world", type=Path, default=Path("outputs/synthetic/easy"), help="for the sentences")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not (args.clips / "cache.json").is_file():
        sys.exit(f"{args.clips}: no stage-1 frame cache (run the stage-1 command in the backbone's stage1.json)")
    cache = FrameCache(args.clips)
    clip_frames = TSGVForGrounding.config_class.from_pretrained(args.runs[0]).clip_frames
    processor = TSGVProcessor.from_pretrained(args.runs[0])
    mean, std = processor.video_processor.image_mean, processor.video_processor.image_std
    clips = ClipDataset(cache, clip_frames, 2, mean, std)
    rows = [readouts_of_run(run, clips, args.world) for run in args.runs]
    names = [name for name in READOUT_NAMES if name in rows[0]]
    print("| run | tuning | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for row in rows:
        tuning = row["backbone_tuning"] + (
            " (no FiLM)" if row["backbone_tuning"] == "scada" and not row["film"] else ""
        )
        print(f"| {Path(row['run']).name} | {tuning} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
