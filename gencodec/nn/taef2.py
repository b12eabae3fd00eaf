"""TAEF2: a pretrained tiny autoencoder for the FLUX.2 latent space.

The encoder maps an RGB image in [0, 1] to a 32-channel latent at 1/8 of its
size; the decoder maps such a latent back to an image, and was trained with
adversarial and perceptual losses, so it renders plausible texture from a good
latent. About 1.34 M parameters each.

Weights: the taef2_encoder.pth / taef2_decoder.pth checkpoints of the public
TAESD project (madebyollin/taesd, commit 5cccb12, Dec 2025), converted tensor
for tensor to safetensors. MIT licence: ship its LICENSE beside the weights.

Both networks are plain ``nn.Sequential``s so that their state_dict keys are
exactly the keys of the weight files ("0.weight", "11.pool.1.bias", ...).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CHANNELS = 64
LATENT_CHANNELS = 32
SCALE = 8  # image side / latent side
ENCODER_FILE = "taef2_encoder.safetensors"
DECODER_FILE = "taef2_decoder.safetensors"


def conv(c_in: int, c_out: int, **kwargs) -> nn.Conv2d:
    """The 3x3 convolution with padding 1 that every layer uses unless it says otherwise."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class Block(nn.Module):
    """conv, ReLU, conv, ReLU, conv, added to the input, then ReLU (keys conv.0, conv.2, conv.4)."""

    def __init__(self, channels: int = CHANNELS):
        super().__init__()
        self.conv = nn.Sequential(conv(channels, channels), nn.ReLU(),
                                  conv(channels, channels), nn.ReLU(),
                                  conv(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x) + x)


class PoolBlock(Block):
    """A Block run on its input plus a 1x1 bottleneck with GroupNorm (keys pool.0, pool.1, pool.3).

    The GroupNorm takes its statistics over the whole feature map, so a pool
    block's output at one pixel depends on the entire image: decoding tiles
    one by one is not exactly decoding the whole.
    """

    def __init__(self, channels: int = CHANNELS, wide: int = 4 * CHANNELS, groups: int = 4):
        super().__init__(channels)
        self.pool = nn.Sequential(nn.Conv2d(channels, wide, 1, bias=False), nn.GroupNorm(groups, wide),
                                  nn.ReLU(), nn.Conv2d(wide, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x + self.pool(x))


class SoftClamp(nn.Module):
    """3 * tanh(x / 3): bounds a latent to (-3, 3), nearly the identity for small values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3.0 * torch.tanh(x / 3.0)


class TAEF2Encoder(nn.Sequential):
    """Image (N, 3, H, W) in [0, 1], H and W multiples of 8 -> latent (N, 32, H/8, W/8)."""

    def __init__(self):
        c = CHANNELS
        layers: list[nn.Module] = [conv(3, c), Block()]
        for block in (Block, Block, PoolBlock):  # three stride-2 stages: 1/2, 1/4, 1/8
            layers += [conv(c, c, stride=2, bias=False), block(), block(), block()]
        layers.append(conv(c, LATENT_CHANNELS))
        super().__init__(*layers)


class TAEF2Decoder(nn.Sequential):
    """Latent (N, 32, h, w) -> image (N, 3, 8h, 8w), clamped to [0, 1] inside ``forward``."""

    def __init__(self):
        c = CHANNELS
        layers: list[nn.Module] = [SoftClamp(), conv(LATENT_CHANNELS, c), nn.ReLU(),
                                   PoolBlock(), PoolBlock(), PoolBlock()]
        for n_blocks in (3, 3, 1):  # three nearest x2 stages: 1/4, 1/2, 1/1
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(c, c, bias=False)]
            layers += [Block() for _ in range(n_blocks)]
        layers.append(conv(c, 3))
        super().__init__(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # The last conv is unbounded; [0, 1] is the image range every caller expects.
        return super().forward(z).clamp(0.0, 1.0)


class FastTAEF2Encoder(nn.Sequential):
    """TAEF2Encoder with its full-resolution layers (0-2) replaced by a head at half resolution.

    The teacher's conv 3->64 and block at full size, and its stride-2 conv, cost
    about half of its multiply-adds; this head packs each 2x2 pixels into 12
    channels (pixel unshuffle) and maps them with two convolutions at half size.
    Layers 3-14 are the teacher's, under the same keys; indices 1 and 2 hold
    nothing, so that they keep their numbers. Trained by distillation.
    """

    NEW = ("0.",)        # keys of its own layers
    REPLACED = ("0.", "1.", "2.")  # the teacher's keys it does not have

    def __init__(self):
        c = CHANNELS
        head = nn.Sequential(nn.PixelUnshuffle(2), conv(12, c), nn.ReLU(), conv(c, c))
        teacher = TAEF2Encoder()
        super().__init__(head, nn.Identity(), nn.Identity(), *list(teacher)[3:])


class FastTAEF2Decoder(nn.Sequential):
    """TAEF2Decoder with its full-resolution layers (16-19) replaced by a tail at half resolution.

    The teacher's last stage (upsample, conv, block and the 64->3 conv at full
    size) costs more than half of its multiply-adds; this tail maps the half-size
    features to 12 channels with two convolutions and unpacks them into 2x2
    pixels (pixel shuffle). Layers 0-15 are the teacher's, under the same keys.
    Trained by distillation.
    """

    NEW = ("16.",)
    REPLACED = ("17.", "18.", "19.")

    def __init__(self):
        c = CHANNELS
        teacher = TAEF2Decoder()
        tail = nn.Sequential(conv(c, c), nn.ReLU(), conv(c, 12), nn.PixelShuffle(2))
        super().__init__(*list(teacher)[:16], tail)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z).clamp(0.0, 1.0)


def load_shared_layers(student: nn.Module, teacher_state: dict[str, torch.Tensor]) -> None:
    """Copy into a fast student the teacher's tensors of the layers they share."""
    own = student.state_dict()
    shared = {k: v for k, v in teacher_state.items() if not k.startswith(student.REPLACED)}
    if set(shared) != {k for k in own if not k.startswith(student.NEW)}:
        raise ValueError(f"the teacher's layers do not fit {type(student).__name__}")
    student.load_state_dict(shared, strict=False)


def _few(keys: list[str]) -> str:
    """Up to three keys, so that a message stays on one line."""
    if not keys:
        return "none"
    more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
    return ", ".join(keys[:3]) + more


def _load(module: nn.Module, path: Path) -> None:
    """Copy the tensors of `path` into `module`, strictly; any failure is a ModelNotFoundError."""
    from safetensors.torch import load_file

    from gencodec.errors import ModelNotFoundError

    if not path.is_file():
        raise ModelNotFoundError(f"TAEF2 weights not found: '{path}'")
    try:
        state = load_file(str(path))
    except Exception as exc:  # truncated, not safetensors, unreadable
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelNotFoundError(f"TAEF2 weights unreadable: '{path}' ({reason})") from None
    # Checked here rather than by load_state_dict, whose message spans many lines.
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or reshaped:
        raise ModelNotFoundError(
            f"TAEF2 weights '{path}' do not match {type(module).__name__}: missing {_few(missing)}; "
            f"unexpected {_few(unexpected)}; wrong shape {_few(reshaped)}")
    module.load_state_dict(state, strict=True)


def load_taef2(folder: str | Path, dtype: torch.dtype = torch.float32) -> tuple[TAEF2Encoder, TAEF2Decoder]:
    """The pretrained (encoder, decoder) from `folder`, frozen, in eval mode, in `dtype`.

    The files hold float16 tensors; they are cast to `dtype` on loading (the
    check values were measured in float32).
    """
    folder = Path(folder).expanduser()
    encoder, decoder = TAEF2Encoder(), TAEF2Decoder()
    for module, name in ((encoder, ENCODER_FILE), (decoder, DECODER_FILE)):
        _load(module, folder / name)
        module.to(dtype).eval().requires_grad_(False)
    return encoder, decoder
