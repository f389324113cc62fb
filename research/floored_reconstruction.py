"""Floored reconstruction: does a masked-reconstruction target that the objects dominate give the recognition-style
stage 1 motion features?

On the synthetic world's flat backgrounds VideoMAE's per-patch normalised target (`norm_pix_loss`) is compression
noise at unit variance, and the plain-pixel target the recognition stage 1 uses is learnt from the background alone
(loss at its floor within 700 steps). This runs that stage 1 unchanged except for the target: each patch normalised
by its own mean and by sqrt(variance + floor^2), so flat patches give targets near zero and patches with an object's
edge keep theirs. Arguments after the floor go to `python -m modeling_tsgv.synthetic.pretraining` as they are.

    python research/floored_reconstruction.py 0.05 --objective recognition --presets easy \\
        --output_dir outputs/stage1-floored --mae_steps 2000 --max_steps 5000 --eval_steps 1000 --logging_steps 250 \\
        --disable_tqdm true --resume_from_checkpoint last

The floor is a standard deviation on [0, 1] pixels. Result (docs/stage1_backbone.md): the floored loss barely fell
(0.216 to 0.209 over 2,000 steps), and the held-out action clip mAP after it was 0.174 / 0.172 at 1,000 / 2,000
classification steps, no better than the plain target's 0.184 / 0.188 on the same world.
"""

import sys

import torch
from transformers import VideoMAEForPreTraining
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from modeling_tsgv.synthetic import pretraining, stage1_recognition


def floored_targets(pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor, config, floor_std: float):
    """pixel_values (B, T, 3, H, W) ImageNet-normalised, bool_masked_pos (B, N) -> (B, masked, tubelet * p * p * 3):
    the masked patches' pixels in [0, 1], each patch less its mean and divided by sqrt(its variance + floor_std^2),
    in VideoMAE's patch and channel order."""
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, dtype=pixel_values.dtype)[None, None, :, None, None]
    std = torch.tensor(IMAGENET_DEFAULT_STD, dtype=pixel_values.dtype)[None, None, :, None, None]
    frames = pixel_values * std + mean
    b, t, c, h, w = frames.shape
    ts, ps = config.tubelet_size, config.patch_size
    frames = frames.view(b, t // ts, ts, c, h // ps, ps, w // ps, ps).permute(0, 1, 4, 6, 2, 5, 7, 3)
    frames = frames.reshape(b, -1, ts * ps * ps, c)
    norm = (frames - frames.mean(-2, keepdim=True)) / (frames.var(-2, keepdim=True) + floor_std**2).sqrt()
    patches = norm.reshape(b, frames.shape[1], -1)
    return patches[bool_masked_pos].reshape(b, -1, patches.shape[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    floor_std = float(argv[0])

    class FlooredPreTraining(VideoMAEForPreTraining):
        """VideoMAE's pre-training model with `floored_targets` as the reconstruction target."""

        def forward(self, pixel_values, bool_masked_pos=None, **kwargs):
            out = super().forward(pixel_values=pixel_values, bool_masked_pos=bool_masked_pos, **kwargs)
            with torch.no_grad():
                labels = floored_targets(pixel_values, bool_masked_pos, self.config, floor_std)
            out.loss = torch.nn.functional.mse_loss(out.logits, labels)
            return out

    stage1_recognition.VideoMAEForPreTraining = FlooredPreTraining  # the phase builds its model from this name
    return pretraining.main(argv[1:])


if __name__ == "__main__":
    main()
