"""LatentCodecModel: the latent family, coding and generating in a pretrained autoencoder's latent space.

    image -> frozen TAEF2 encoder -> L (32 ch, 1/8) -> LatentAnalysis -> y (1/16)
          -> hyperprior latent codec (integer scale path, ANS) -> the file
    y^    -> LatentSynthesis -> L_bar (realism 0) and features
          -> one-step conditional diffusion of the residual L - L_bar   (realism 1)
          -> L_bar + realism * residual -> frozen TAEF2 decoder -> image

The autoencoder's decoder was trained adversarially to draw texture from a
good latent: the codec's own networks only have to get the latent right, at
64 times fewer positions than the image. The autoencoder's weights are part
of this model (its state dict, hence its fingerprint); they are loaded from
their pretrained folder when a model is first built for training.
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffusers.configuration_utils import register_to_config

from .diffusion import diffusion_settings
from .model import CodecModel
from .nn.denoiser import ResidualDenoiser
from .nn.latent_transforms import LatentAnalysis, LatentSynthesis
from .nn.taef2 import (LATENT_CHANNELS, SCALE, FastTAEF2Decoder, FastTAEF2Encoder, TAEF2Decoder, TAEF2Encoder,
                        load_shared_layers, load_taef2)

# The default denoiser of the latent residual: a diffusers UNet at the latent's resolution.
DEFAULT_LATENT_DECODER = {"block_out_channels": [96, 128, 192], "layers_per_block": 1, "residual_scale": 2.0}

# The autoencoder's (encoder, decoder) classes. "taef2-fast": TAEF2 with its full-resolution layers
# replaced by half-resolution ones, distilled from TAEF2 (a `distill` training stage): about half the
# multiply-adds of each.
AUTOENCODERS = {"taef2": (TAEF2Encoder, TAEF2Decoder), "taef2-fast": (FastTAEF2Encoder, FastTAEF2Decoder)}

#: The autoencoder's licence travels with its weights: beside them in every model folder,
#: copied from the pretrained folder ("LICENSE") or from the model a stage starts from.
LICENSE_NAME = "LICENSE-TAEF2"


class LatentCodecModel(CodecModel):
    """TAEF2 encoder and decoder (frozen), latent analysis and synthesis, hyperprior codec and latent denoiser.

    The arguments mirror GenCodecModel's; `channels` and `blocks` name the
    stages of the latent transforms (at 1/8, 1/16, ... of the image; y at the coarsest).
    """

    space_scale = SCALE
    distortion_scale = 1.0  # the latent's MSE as it is: its values spread about 0.85, not 1/255
    FROZEN = ("image_encoder", "image_decoder")

    @register_to_config
    def __init__(
        self,
        autoencoder: str = "taef2",
        latent_channels: int = 192,
        channels: tuple = (128, 192),
        blocks: tuple = (1, 2),
        attention: bool = True,
        attention_heads: int = 4,
        attention_window: int = 8,
        hyper_channels: int = 128,
        hyper_latent_channels: int = 64,
        n_levels: int = 8,
        n_scales: int = 64,
        scale_min: float = 0.11,
        scale_max: float = 64.0,
        z_half_width: int = 32,
        gain_range: tuple = (0.25, 2.0),
        generative_decoder: dict | None = DEFAULT_LATENT_DECODER,
        diffusion: dict | None = None,
        trained_steps: int = 0,
        colour_offset: bool = False,
        z_context: bool = False,
        rungs: list | None = None,
    ):
        super().__init__()
        if autoencoder not in AUTOENCODERS:
            raise ValueError(f"unknown autoencoder '{autoencoder}' (known: {', '.join(AUTOENCODERS)})")
        self.register_to_config(diffusion=diffusion_settings(diffusion))
        encoder_class, decoder_class = AUTOENCODERS[autoencoder]
        self.image_encoder = encoder_class().requires_grad_(False)
        self.image_decoder = decoder_class().requires_grad_(False)
        transform_args = dict(channels=tuple(channels), blocks=tuple(blocks), attention=attention,
                              heads=attention_heads, window=attention_window)
        self.analysis = LatentAnalysis(LATENT_CHANNELS, latent_channels, **transform_args)
        self.synthesis = LatentSynthesis(latent_channels, LATENT_CHANNELS, **transform_args)
        denoiser = dict(generative_decoder or {})
        self.residual_scale = float(denoiser.pop("residual_scale", 2.0))
        self.denoiser = (ResidualDenoiser(self.synthesis.feature_channels, fold=1, image_channels=LATENT_CHANNELS,
                                          centre=False, **denoiser)
                         if generative_decoder is not None else None)
        self._build_latent_codec()

    def load_autoencoder(self, folder: str | Path) -> None:
        """Copy the pretrained autoencoder's weights in (a model built for training starts with them).
        A fast autoencoder takes the layers it shares with TAEF2; its own start untrained."""
        encoder, decoder = load_taef2(folder)
        for own, pretrained in ((self.image_encoder, encoder), (self.image_decoder, decoder)):
            if isinstance(own, (FastTAEF2Encoder, FastTAEF2Decoder)):
                load_shared_layers(own, pretrained.state_dict())
            else:
                own.load_state_dict(pretrained.state_dict())

    @property
    def fast_autoencoder(self) -> bool:
        return self.config.autoencoder == "taef2-fast"

    def load_warm_start(self, state: dict[str, torch.Tensor], fresh: tuple[str, ...] = ()) -> list[str]:
        """As CodecModel's; and a model with the fast autoencoder may start from one with TAEF2 itself:
        it takes the layers they share, and its own layers start untrained (for a `distill` stage)."""
        new = []
        if self.fast_autoencoder and "image_decoder.19.weight" in state:
            replaced = {"image_encoder": FastTAEF2Encoder, "image_decoder": FastTAEF2Decoder}
            state = {key: value for key, value in state.items()
                     if not any(key.startswith(f"{name}.{prefix}") for name, cls in replaced.items()
                                for prefix in cls.REPLACED)}
            own = self.state_dict()
            state.update({key: own[key] for name, cls in replaced.items() for prefix in cls.NEW
                          for key in own if key.startswith(f"{name}.{prefix}")})
            new = [f"{name}.{prefix.rstrip('.')}" for name, cls in replaced.items() for prefix in cls.NEW]
        return super().load_warm_start(state, fresh) + new

    def forward(self, x: torch.Tensor, level: torch.Tensor | None = None, noise=None, train_codec: bool = True,
                train_synthesis: bool | None = None, image: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """CodecModel's training forward; with `image` (a distill stage) the autoencoder's instead:
        x, a latent, rendered; and `image`, encoded."""
        if image is not None:
            return {"rendered": self.render(x), "latent": self.to_space(image)}
        return super().forward(x, level, noise, train_codec, train_synthesis)

    def how_new_modules_start(self, module: str) -> str:
        if module.startswith(("image_encoder.", "image_decoder.")):
            return "untrained: a distill stage trains it"
        return super().how_new_modules_start(module)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.FROZEN:  # the autoencoder always runs as at inference
            getattr(self, name).eval()
        return self

    def tune_for(self, device: torch.device | str | None) -> None:
        """On a CPU, the autoencoder's convolutions run channels-last (NHWC): oneDNN's fast layout for
        64-channel 3x3 convolutions at full resolution, where decoding spends most of its time.
        None: back to the layout as built."""
        self._channels_last = device is not None and torch.device(device).type == "cpu"
        layout = torch.channels_last if self._channels_last else torch.contiguous_format
        self.image_encoder.to(memory_format=layout)
        self.image_decoder.to(memory_format=layout)

    def _laid_out(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if getattr(self, "_channels_last", False) else x

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(self._laid_out(x)).contiguous()

    def render(self, s: torch.Tensor) -> torch.Tensor:
        return self.image_decoder(self._laid_out(s)).contiguous()
