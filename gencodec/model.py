"""GenCodecModel: every network of gencodec in one diffusers-style model folder.

A model folder is `config.json` + `diffusion_pytorch_model.safetensors`, written
by `save_pretrained` and read by `from_pretrained` with no network access. The
entropy tables travel inside the safetensors file as integer buffers.
"""

from __future__ import annotations

import hashlib
import json

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .diffusion import diffusion_settings
from .entropy.hyperprior import HyperpriorLatentCodec
from .nn.analysis import AnalysisTransform
from .nn.denoiser import ResidualDenoiser
from .nn.synthesis import SynthesisTransform
from .rungs import rungs_of


def state_dict_sha256(state: dict[str, torch.Tensor], h=None) -> str:
    """sha256 over every tensor's name, dtype, shape and exact bytes, in name order, as hex.

    `h` continues a hash that already holds something else (a config).
    """
    h = hashlib.sha256() if h is None else h
    for name, tensor in sorted(state.items()):
        # Flattened, so that the bytes are in logical order whatever the memory layout (channels-last too).
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.flatten().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


Z_CONTEXT_PREFIX = "latent_codec.z_context."

#: Settings added to the config after models had shipped, with the value those models have: a model
#: hashes such a setting only where it differs, so that every earlier model keeps its fingerprint (and
#: every file it wrote stays readable).
HASHED_WHEN_SET = {"colour_offset": False, "z_context": False, "rungs": None}


# The default generative decoder: a 3.9 M-parameter UNet on the 4x-folded residual.
DEFAULT_DECODER = {"block_out_channels": [64, 96, 128], "layers_per_block": 1, "fold": 4, "residual_scale": 5.0}


class CodecModel(ModelMixin, ConfigMixin):
    """What every model family shares: the rate ladder, the training forward, warm starts, tables, fingerprint.

    A family works in its own space: the pixel family (GenCodecModel) on the
    image itself, the latent family (gencodec.latent_model.LatentCodecModel)
    on a frozen autoencoder's latent of it. Either has `analysis`,
    `latent_codec`, `synthesis` and `denoiser` (or None) over that space, and
    says how an image enters it (`encode`) and how a result leaves it
    (`render`).
    """

    config_name = "config.json"

    #: Pixels per position of the working space, per side (1: the image itself).
    space_scale = 1

    #: Codec stages minimise bpp + lambda * distortion_scale * MSE in the working space: 255^2 puts
    #: lambda on the usual 8-bit scale for images (as in CompressAI).
    distortion_scale = 255.0 ** 2

    #: The encoder search's settings (gencodec.encoder_search.SearchSettings), read from the model folder's
    #: encoder.json; None: the encoder codes the analysis transform's y as it is. Not part of the config or
    #: the fingerprint: it changes which code the encoder picks, never how a file decodes.
    encoder_search = None

    #: Modules that never train (a pretrained autoencoder); no stage's optimizer sees them.
    FROZEN: tuple[str, ...] = ()

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N,3,H,W) in [0,1] -> the working space."""
        return x

    def render(self, s: torch.Tensor) -> torch.Tensor:
        """Working space -> image (N,3,H,W), in about [0, 1]."""
        return s

    def tune_for(self, device: torch.device | str | None) -> None:
        """Lay the model out for fast inference on `device` (None: as built); changes no weight.
        A no-op unless a family says otherwise."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N,3,H,W) in [0,1], sides multiples of padding_multiple -> y."""
        return self.analysis(self.to_space(x))

    def _build_latent_codec(self) -> None:
        """The hyperprior latent codec, from the config (every family's __init__ ends with it)."""
        c = self.config
        self.latent_codec = HyperpriorLatentCodec(
            c.latent_channels, c.hyper_channels, c.hyper_latent_channels, c.n_levels, c.n_scales,
            c.scale_min, c.scale_max, c.z_half_width, tuple(c.gain_range), z_context=c.get("z_context", False))
        rungs_of(c, c.n_levels)  # a wrong ladder fails here, when the model is built

    @property
    def downsampling(self) -> int:
        """Image pixels per position of y, per side."""
        return self.space_scale * self.analysis.downsampling

    @property
    def n_levels(self) -> int:
        return self.config.n_levels

    @property
    def padding_multiple(self) -> int:
        """Images are padded to this multiple: y is at 1/downsampling and z at a further 1/4."""
        return self.downsampling * 4

    def forward(self, x: torch.Tensor, level: torch.Tensor, noise=None,
                train_codec: bool = True, train_synthesis: bool | None = None,
                target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The training forward: x in the working space (for the pixel family the image (N,3,H,W) in
        [0,1]), its sides multiples of padding_multiple / space_scale.

        Returns y_hat, the rates and x_bar. With `noise` (a training.noise.TrainingNoise),
        it also runs the denoiser on the noised residual: `r0` (the target), `pred`
        (the x0 prediction) and `x_hat` (the image it implies). With
        train_codec=False the codec runs frozen, with real rounding, as at decode
        time. `train_synthesis` (default: as train_codec) lets the base synthesis
        G learn even so: G only turns y^ into pixels, so training it leaves every
        file's bytes as they were (save for the encoder search, which measures
        its codes through G). `target` (default: x) is the picture the denoiser's residual
        reaches for: another than x where x is what a decoder sees of it (the upsampled picture
        of a downscaled rung: gencodec.training.rung_inputs). Everything goes through forward so
        that distributed training synchronises every gradient.
        """
        grad = torch.is_grad_enabled()
        train_synthesis = train_codec if train_synthesis is None else train_synthesis
        with torch.set_grad_enabled(train_codec and grad):
            if not train_codec:
                self.latent_codec.eval()
            out = self.latent_codec(self.analysis(x), level)
        if not train_codec:
            self.latent_codec.train(self.training)
        with torch.set_grad_enabled(train_synthesis and grad):
            if noise is None:
                out["x_bar"] = self.synthesis(out["y_hat"])
                return out
            x_bar, features = self.synthesis.forward_with_features(out["y_hat"])
        den = self.denoiser
        target = x if target is None else target
        r0 = den.fold_image(target - x_bar.detach()) * self.residual_scale  # the target never pulls on the codec
        r_t, t = noise(r0, self.config.diffusion)
        pred = den(r_t, t, den.condition(x_bar, features))
        out.update(x_bar=x_bar, r0=r0, pred=pred, x_hat=x_bar + den.unfold_image(pred) / self.residual_scale)
        return out

    #: Modules that start as the identity (their last layer at zero), so that a
    #: warm start from a model without them keeps that model's output exactly.
    ADDABLE_MODULES = ("denoiser.refiner.",)

    #: The networks a warm start may leave at their initialisation (`fresh`).
    NETWORKS = ("analysis", "synthesis", "latent_codec", "denoiser")

    def load_warm_start(self, state: dict[str, torch.Tensor], fresh: tuple[str, ...] = ()) -> list[str]:
        """Load a trained model's weights; returns the addable modules that it lacked.

        Every tensor must match, except the tensors of ADDABLE_MODULES that the
        warm start does not have, and those of the `fresh` networks (say, a
        wider denoiser on a trained codec), which are not taken from it: those
        keep their initialisation.
        """
        unknown = sorted(set(fresh) - set(self.NETWORKS))
        if unknown:
            raise ValueError(f"no network '{unknown[0]}' to start afresh (networks: {', '.join(self.NETWORKS)})")
        skipped = tuple(f"{network}." for network in fresh)
        state = {key: value for key, value in state.items() if not key.startswith(skipped)} if skipped else state
        # A z context is fitted to a codec as it was stored (gencodec.training.z_context_fit): training moves
        # z^, so it is never carried over; fit it again after training.
        state = {key: value for key, value in state.items() if not key.startswith(Z_CONTEXT_PREFIX)}
        own = self.state_dict()
        for key, value in state.items():  # checked first: a refused warm start changes nothing
            if key in own and own[key].shape != value.shape:
                raise ValueError(f"size mismatch for {key}: {tuple(value.shape)} in the warm start, "
                                 f"{tuple(own[key].shape)} in the model")
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.startswith(skipped)] if skipped else missing
        new = sorted({prefix for prefix in self.ADDABLE_MODULES for key in missing if key.startswith(prefix)})
        other = [key for key in missing if not key.startswith(self.ADDABLE_MODULES)] + list(unexpected)
        if other:
            raise ValueError(f"{len(other)} tensors do not match the model, e.g. '{other[0]}'")
        return [prefix.rstrip(".") for prefix in new]

    def how_new_modules_start(self, module: str) -> str:
        """For the log: how a module that load_warm_start reported as new starts."""
        return "it starts as the identity"

    def update_tables(self) -> None:
        self.latent_codec.update_tables()

    def fingerprint(self) -> str:
        """sha256 over the config and every parameter and buffer, as hex.

        A file's header stores its low 16 bits; decoding with another model is
        refused rather than turned into a wrong image.
        """
        h = hashlib.sha256()
        config = {k: v for k, v in self.config.items()
                  if not k.startswith("_") and not (k in HASHED_WHEN_SET and v == HASHED_WHEN_SET[k])}
        h.update(json.dumps(config, sort_keys=True, default=list).encode())
        return state_dict_sha256(self.state_dict(), h)


class GenCodecModel(CodecModel):
    """Analysis transform E, hyperprior latent codec, base synthesis G, and the generative decoder.

    `colour_offset`: every file carries the integer offset that moves the decoded picture's
    mean colour to the photo's (gencodec.colour_offset).

    `z_context`: z^ is coded with a causal context model fitted after training
    (gencodec.entropy.z_context) instead of its factorized prior.

    `rungs`: the file levels, each a coding level and the factor by which the photo is made smaller
    before it is coded (gencodec.rungs); None: file level L is coding level L at full size.

    `generative_decoder` is None for a codec without a generative decoder (decoding
    then always gives the base reconstruction), or the keyword arguments of
    ResidualDenoiser plus `residual_scale`, the factor that brings the
    residual x - x_bar to about unit spread for the diffusion. `diffusion`
    holds the noise schedule and the sampler's defaults (see
    gencodec.diffusion.diffusion_settings); what it leaves out takes the
    defaults, and the config always stores every setting in full.
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 128,
        channels: tuple = (64, 96, 128, 192),
        blocks: tuple = (0, 1, 1, 2),
        attention_stages: tuple = (3,),
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
        generative_decoder: dict | None = DEFAULT_DECODER,
        diffusion: dict | None = None,
        trained_steps: int = 0,
        colour_offset: bool = False,
        z_context: bool = False,
        rungs: list | None = None,
    ):
        super().__init__()
        self.register_to_config(diffusion=diffusion_settings(diffusion))
        transform_args = dict(channels=tuple(channels), blocks=tuple(blocks),
                              attention_stages=tuple(attention_stages), heads=attention_heads,
                              window=attention_window)
        self.analysis = AnalysisTransform(latent_channels, **transform_args)
        denoiser = dict(generative_decoder or {})
        self.residual_scale = float(denoiser.pop("residual_scale", 5.0))
        fold = int(denoiser.pop("fold", 4))
        self.synthesis = SynthesisTransform(latent_channels, feature_scale=fold, **transform_args)
        self.denoiser = (ResidualDenoiser(self.synthesis.feature_channels, fold=fold, **denoiser)
                         if generative_decoder is not None else None)
        self._build_latent_codec()
