"""The mean-scale hyperprior latent codec (Minnen et al. 2018, without context model).

    y --gain(level)--> y_g            z = h_a(y) --gain_z(level)--> z^ = round(z_g)
    z^ --IntegerScaleNet--> scale index (exact)     z^ / gain_z --h_s mean--> mu (float)
    s = round(y_g - mu * gain)  (mean subtracted before rounding)
    y^ = (s + mu * gain) / gain

One model serves every rate level: a level is a pair of per-channel gain
vectors (Cui et al. 2021) plus level biases in the integer scale network and
its own factorized prior for z.

The coded order, which the decoder follows: the colour offset where the
model codes one (gencodec.colour_offset); z^, either channel by channel
(raster order inside a channel) under the factorized prior, then z escapes,
or, for a model with a z context (gencodec.entropy.z_context), one bit that
says which of the two codes it, and then, with the context, z^ position by
position in raster order, all channels of each, with no escapes; then the
symbols of y grouped by scale index (ascending; raster order of (channel,
row, column) inside a group), then y escapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import colour_offset
from ..nn.hyper import HyperAnalysis, HyperSynthesisMean
from .ans import CategoricalTable, SymbolReader, SymbolWriter
from .escape import ESCAPE_BITS, MAX_RESIDUAL, merge_escapes, split_escapes
from .factorized import FactorizedPrior
from .gaussian import GaussianConditional
from .integer_scale import IntegerScaleNet
from .tables import TOTAL
from .z_context import ZContextPrior


# The hyper-synthesis networks (z^ -> y's scale indexes and mean, 4x the size) run in tiles of Z_TILE z
# positions for a large image, so that their activations at y's size take memory by the tile. Each tile
# carries Z_MARGIN more positions on every side than its receptive field needs (under 2), and only its
# interior is kept: so the integer scale network's indexes are exactly what one pass would give.
Z_TILE, Z_MARGIN = 32, 4


def by_z_tiles(fn, z: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """fn (z -> an output `scale` times its size) applied tile by tile; one pass for a small z."""
    n, _, h, w = z.shape
    if h <= Z_TILE and w <= Z_TILE:
        return fn(z)
    out = None
    for top in range(0, h, Z_TILE):
        for left in range(0, w, Z_TILE):
            t0, l0 = max(0, top - Z_MARGIN), max(0, left - Z_MARGIN)
            part = fn(z[..., t0: min(h, top + Z_TILE + Z_MARGIN), l0: min(w, left + Z_TILE + Z_MARGIN)])
            if out is None:
                out = part.new_empty(n, part.shape[1], h * scale, w * scale)
            th, tw = min(Z_TILE, h - top), min(Z_TILE, w - left)
            out[..., top * scale: (top + th) * scale, left * scale: (left + tw) * scale] = part[
                ..., (top - t0) * scale: (top - t0 + th) * scale, (left - l0) * scale: (left - l0 + tw) * scale]
    return out


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _uniform_noise(x: torch.Tensor) -> torch.Tensor:
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


@dataclass
class LatentCode:
    """The integer content of a code: what the ANS stream carries, and the derived indexes."""

    z_hat: torch.Tensor      # (C_z, h/4, w/4) int64
    symbols: torch.Tensor    # (C_y, h, w) int64, s = round(y_g - mu_g)
    indexes: torch.Tensor    # (C_y, h, w) int64 scale indexes
    colour_offset: np.ndarray | None = None  # (3,) int32 levels, for a model that codes one (gencodec.colour_offset)


class HyperpriorLatentCodec(nn.Module):
    def __init__(self, latent_channels: int = 128, hyper_channels: int = 128, hyper_latent_channels: int = 64,
                 n_levels: int = 8, n_scales: int = 64, scale_min: float = 0.11, scale_max: float = 64.0,
                 z_half_width: int = 32, gain_range: tuple[float, float] = (0.25, 2.0), z_context: bool = False):
        super().__init__()
        self.latent_channels = latent_channels
        self.hyper_latent_channels = hyper_latent_channels
        self.n_levels = n_levels
        self.hyper_analysis = HyperAnalysis(latent_channels, hyper_channels, hyper_latent_channels)
        self.hyper_mean = HyperSynthesisMean(hyper_latent_channels, hyper_channels, latent_channels)
        self.scale_net = IntegerScaleNet(hyper_latent_channels, hyper_channels, latent_channels, n_levels, n_scales)
        self.z_prior = FactorizedPrior(n_levels * hyper_latent_channels, half_width=z_half_width)
        # Where set, z^ is coded with a causal context fitted after training; training prices z with the
        # factorized prior either way.
        self.z_context = ZContextPrior(n_levels * hyper_latent_channels, z_half_width) if z_context else None
        self.y_conditional = GaussianConditional(n_scales, scale_min, scale_max)
        # Level 0 is the lowest rate: small gains quantise y coarsely.
        log_gains = torch.linspace(np.log(gain_range[0]), np.log(gain_range[1]), n_levels)
        self.log_gain = nn.Parameter(log_gains[:, None].repeat(1, latent_channels))
        self.log_z_gain = nn.Parameter(torch.zeros(n_levels, hyper_latent_channels))
        self._tables: dict | None = None

    #: How the training rate stands in for rounding: "noise" (additive uniform noise, the
    #: usual choice from scratch) or "ste" (real rounding with a straight-through gradient).
    #: Noise prices a symbol that is always 0 at ~0.1-0.3 bits whatever its scale, which at
    #: extreme rates, where nearly every symbol is 0, is most of the estimate; the
    #: straight-through rate is the real one and lets such symbols go to ~0 bits. A training
    #: setting, not part of the model: coding is the same either way.
    rate_quantizer: str = "noise"

    def _rate_proxy(self, v: torch.Tensor) -> torch.Tensor:
        if self.rate_quantizer == "ste":
            return _ste_round(v)
        if self.rate_quantizer == "noise":
            return _uniform_noise(v)
        raise ValueError(f"rate_quantizer must be 'noise' or 'ste', not {self.rate_quantizer!r}")

    # -- shared pieces --------------------------------------------------------------------
    def _gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.exp(self.log_gain[level])[:, :, None, None]
        gz = torch.exp(self.log_z_gain[level])[:, :, None, None]
        return g, gz

    def _z_likelihood(self, z: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Per-element likelihood of z under each sample's own level prior."""
        out = torch.empty_like(z)
        for lv in level.unique().tolist():
            rows = level == lv
            out[rows] = self.z_prior.likelihood(z[rows], lv * self.hyper_latent_channels)
        return out

    def _z_scaled(self, y: torch.Tensor, gz: torch.Tensor) -> torch.Tensor:
        """z times its level's gain, clamped to the z tables' range [-half_width, half_width].

        Beyond that range a symbol is escaped (17 bits more), which the training
        rate of the factorized density cannot see: unclamped, a codec can learn to
        carry its picture in huge z values that look cheap in training and cost
        thousands of bytes in the file. Clamped, a value out of range carries no
        more than the edge of the range. The clamp passes its gradient straight
        through, so the rate can still pull a value at the edge back into range
        (a plain clamp would leave it stuck there).
        """
        k = self.z_prior.half_width
        z = self.hyper_analysis(y) * gz
        return z + (z.clamp(-k, k) - z).detach()

    # -- training / evaluation forward -------------------------------------------------------
    def forward(self, y: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        """y (N, C, h, w), level (N,) -> y_hat and the rate in bits per image.

        Training: the rate is differentiable through `rate_quantizer` (additive
        uniform noise, or straight-through rounding), and straight-through
        rounding gives y_hat (the decoder sees real quantisation). Evaluation:
        real rounding, exact indexes and the integer tables, so `bits` is the
        model's information content.

        It always runs in the parameters' precision (float32), outside any
        autocast (bf16 mixed-precision training): the integer scale network's
        fixed-point rounding, the rate and the mean must be what the coder
        computes, not a bf16 guess of it.
        """
        with torch.autocast(y.device.type, enabled=False):
            return self._forward(y.to(self.log_gain.dtype), level)

    def _forward(self, y: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        g, gz = self._gains(level)
        z_g = self._z_scaled(y, gz)
        if self.training:
            z_hat = _ste_round(z_g)
            bits_z = -torch.log2(self._z_likelihood(self._rate_proxy(z_g), level)).sum((1, 2, 3))
            indexes = self.scale_net(z_hat, level)
        else:
            z_hat = torch.round(z_g)
            bits_z = self._z_bits(z_hat, level)
            indexes = torch.cat([self.scale_net.indexes(z_hat[i: i + 1], int(level[i])) for i in range(len(level))])
        mu_g = self.hyper_mean(z_hat / gz) * g
        residual = (y * g - mu_g).clamp(-MAX_RESIDUAL, MAX_RESIDUAL)
        if self.training:
            scale = self.y_conditional.scale(indexes)
            lik = self.y_conditional.likelihood(self._rate_proxy(residual), scale)
            bits_y = -torch.log2(lik).sum((1, 2, 3))
            y_hat = (_ste_round(residual) + mu_g) / g
        else:
            s = torch.round(residual)
            bits_y = self.y_conditional.bits(s, indexes).sum((1, 2, 3)).to(y.dtype)
            y_hat = (s + mu_g) / g
        return {"y_hat": y_hat, "bits_y": bits_y, "bits_z": bits_z, "bits": bits_y + bits_z}

    def _z_bits(self, z_hat: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """The information content of z^ (N, C, h, w) as the coder codes it, in bits per image."""
        factorized = self._factorized_z_bits(z_hat, level)
        if self.z_context is None:
            return factorized
        cz = self.hyper_latent_channels
        context = torch.tensor([self.z_context.bits(z.long().cpu().numpy(), int(lv) * cz)
                                for z, lv in zip(z_hat, level)], dtype=factorized.dtype, device=factorized.device)
        return torch.minimum(factorized, context) + 1  # the cheaper, and the bit that says which

    def _factorized_z_bits(self, z_hat: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        k = self.z_prior.half_width
        counts = self.z_prior.counts
        bits = []
        for i in range(z_hat.shape[0]):
            rows = counts[int(level[i]) * self.hyper_latent_channels + torch.arange(z_hat.shape[1])]
            v = z_hat[i].reshape(z_hat.shape[1], -1).long()
            escaped = v.abs() > k
            col = torch.where(escaped, torch.full_like(v, 2 * k + 1), v + k)
            p = torch.gather(rows.long(), 1, col).double() / TOTAL
            bits.append((-torch.log2(p)).sum() + escaped.sum() * ESCAPE_BITS)
        return torch.stack(bits).to(z_hat.dtype)

    # -- re-levelling -------------------------------------------------------------------------
    @torch.no_grad()
    def copy_levels(self, sources: list[int], log_gain_offsets: list[float] | None = None,
                    log_z_gain_offsets: list[float] | None = None) -> None:
        """Level l takes the per-level parameters (gains, z densities, level biases) that
        level sources[l] has now, its log gains shifted by the offsets; the shared
        networks are untouched. The z tables move with their densities.

        A training device for moving a trained ladder to other lambdas. The level
        gains move slowly under the rate gradient (a settled wide z density prices a
        small shrink of z at almost nothing, and straight-through z^ hides from the
        scale branch what coarser z costs it), so a level meant for a much lower
        rate starts from a trained level with coarser gains, and training adapts
        the densities, biases and transforms around it.
        """
        n = self.n_levels
        if len(sources) != n or not all(0 <= s < n for s in sources):
            raise ValueError(f"copy_levels needs {n} source levels in [0, {n}), got {sources}")
        for offsets in (log_gain_offsets, log_z_gain_offsets):
            if offsets is not None and len(offsets) != n:
                raise ValueError(f"copy_levels needs {n} gain offsets, got {offsets}")
        src = torch.tensor(sources, device=self.log_gain.device)
        for per_level in (self.log_gain, self.log_z_gain, self.scale_net.level_bias1, self.scale_net.level_bias3):
            per_level.copy_(per_level[src].clone())
        for log_gain, offsets in ((self.log_gain, log_gain_offsets), (self.log_z_gain, log_z_gain_offsets)):
            if offsets is not None:
                log_gain.add_(torch.tensor(offsets, dtype=log_gain.dtype, device=log_gain.device)[:, None])
        cz = self.hyper_latent_channels
        rows = (src[:, None] * cz + torch.arange(cz, device=src.device)).reshape(-1)
        prior = self.z_prior
        tables = [prior.counts] if self.z_context is None else [prior.counts, self.z_context.weights,
                                                                 self.z_context.counts]
        for param in [*prior.matrices, *prior.biases, *prior.factors, *tables]:
            param.copy_(param[rows.to(param.device)].clone())
        if self.z_context is not None:
            self.z_context._probabilities = None
        self._tables = None

    # -- coding tables ------------------------------------------------------------------------
    def update_tables(self) -> None:
        """Rebuild the learned z tables (after training, before export)."""
        self.z_prior.update_tables()
        self._tables = None

    def _coding_tables(self) -> dict:
        """constriction models for every table row, built once per table state."""
        if self._tables is None:
            if not self.z_prior.tables_ready:
                raise RuntimeError("entropy tables are not built: call model.update_tables() before coding")
            gc = self.y_conditional
            self._tables = {
                "z": [CategoricalTable(row.numpy()) for row in self.z_prior.counts.cpu()],
                "y": [CategoricalTable(gc.row(i).cpu().numpy()) for i in range(gc.n_scales)],
                "y_half_widths": gc.half_widths.cpu().numpy().astype(np.int32),
            }
        return self._tables

    def __getstate__(self):  # copies and pickles rebuild the constriction models on demand
        state = dict(self.__dict__)
        state["_tables"] = None
        return state

    def _load_from_state_dict(self, *args, **kwargs):  # new weights -> new tables
        self._tables = None
        super()._load_from_state_dict(*args, **kwargs)

    # -- compress / decompress ---------------------------------------------------------------------
    @torch.no_grad()
    def analyse(self, y: torch.Tensor, level: int) -> LatentCode:
        """y (1, C, h, w) -> the integer code at `level` (the encoder's half of the model)."""
        with torch.autocast(y.device.type, enabled=False):  # exact integers: never under autocast
            return self._analyse(y.to(self.log_gain.dtype), level)

    def _analyse(self, y: torch.Tensor, level: int) -> LatentCode:
        z_hat, indexes, mu_g, g = self.side_of(y, level)
        s = torch.round((y * g - mu_g).clamp(-MAX_RESIDUAL, MAX_RESIDUAL))
        return LatentCode(z_hat[0].long().cpu(), s[0].long().cpu(), indexes[0].cpu())

    def side_of(self, y: torch.Tensor, level: int) -> tuple[torch.Tensor, ...]:
        """y (1, C, h, w) in float32 -> what the code of y at `level` is coded against: (z^, the scale
        indexes, the mean mu*g, the gain g); its residuals are round(y*g - mu*g)."""
        lv = torch.tensor([level], device=y.device)
        g, gz = self._gains(lv)
        z_hat = torch.round(self._z_scaled(y, gz))
        indexes = by_z_tiles(lambda z: self.scale_net.indexes(z, level), z_hat)
        mu_g = by_z_tiles(self.hyper_mean, z_hat / gz) * g
        return z_hat, indexes, mu_g, g

    def encode(self, code: LatentCode, level: int, image_size: tuple[int, int]) -> tuple[bytes, float]:
        """Entropy-code a LatentCode -> (payload, information content in bits); `image_size`
        (width, height) is sealed into the stream (gencodec.entropy.ans)."""
        tables = self._coding_tables()
        writer = SymbolWriter(image_size)
        if code.colour_offset is not None:  # first decoded: it needs nothing else
            writer.write_uniform(colour_offset.to_symbols(code.colour_offset), 1 << colour_offset.BITS)
        use_context = False
        if self.z_context is not None:
            # The context saves a fifth to two fifths of z^ on photos, but on a grid of a few positions
            # (an image under ~200 px) the factorized prior can be cheaper: code it the cheaper way.
            first_row = level * self.hyper_latent_channels
            columns, classes = self.z_context.residuals(code.z_hat.numpy(), first_row)
            context_bits = self.z_context.residual_bits(columns, classes, first_row)
            use_context = context_bits <= float(self._factorized_z_bits(code.z_hat[None], torch.tensor([level]))[0])
            writer.write_uniform(np.array([int(use_context)]), 2)
        if use_context:
            self.z_context.write(writer, columns, classes, first_row)
        else:
            k = self.z_prior.half_width
            z = code.z_hat.reshape(code.z_hat.shape[0], -1).numpy()
            z_cols, z_esc = split_escapes(z, np.array(k))
            for c in range(z.shape[0]):
                writer.write(z_cols[c], tables["z"][level * self.hyper_latent_channels + c])
            writer.write_escapes(z_esc)
        # Narrow integer types and early deletes: a large image has tens of millions of symbols.
        idx = code.indexes.reshape(-1).numpy().astype(np.int16)
        order = np.argsort(idx, kind="stable")  # group by index, raster order inside
        idx_sorted = np.take(idx, order)
        sym = np.take(code.symbols.reshape(-1).numpy().astype(np.int32), order)
        del order, idx
        cols, y_esc = split_escapes(sym, tables["y_half_widths"][idx_sorted])
        del sym
        bounds = np.searchsorted(idx_sorted, np.arange(len(tables["y"]) + 1))
        for i in range(len(tables["y"])):
            writer.write(cols[bounds[i]: bounds[i + 1]], tables["y"][i])
        writer.write_escapes(y_esc)
        return writer.finish(), writer.information_bits

    def decode(self, payload: bytes, level: int, height: int, width: int, image_size: tuple[int, int],
               device: torch.device | str = "cpu", with_colour_offset: bool = False) -> LatentCode:
        """Payload -> LatentCode for a latent of (height, width) of an image of `image_size` (width,
        height); raises CorruptFileError on damage. `with_colour_offset`: the stream starts with one
        (models whose config has colour_offset).

        The work is bounded by the payload: a payload shorter than the least any valid stream of this
        size and level holds is refused before anything is decoded, and again before the scale network
        runs; a stream that runs dry is refused at the end of the chunk where it did.
        """
        tables = self._coding_tables()
        reader = SymbolReader(payload, image_size)
        k = self.z_prior.half_width
        cz, zh, zw = self.hyper_latent_channels, height // 4, width // 4
        z_tables = tables["z"][level * cz:(level + 1) * cz]
        y_least = self.latent_channels * height * width * min(table.min_bits for table in tables["y"])
        z_least = zh * zw * sum(table.min_bits for table in z_tables)
        if self.z_context is not None:
            z_least = SymbolReader.uniform_min_bits(1, 2) + min(z_least, zh * zw * self.z_context.min_bits(level * cz, cz))
        offset_size = 1 << colour_offset.BITS
        offset_least = SymbolReader.uniform_min_bits(colour_offset.CHANNELS, offset_size) if with_colour_offset else 0
        reader.require(offset_least + z_least + y_least,
                       f"an image of {image_size[0]}x{image_size[1]} at level {level}")
        offset = (colour_offset.from_symbols(reader.read_uniform(colour_offset.CHANNELS, offset_size))
                  if with_colour_offset else None)
        if self.z_context is not None and reader.read_uniform(1, 2)[0] == 1:
            z = self.z_context.read(reader, cz, zh, zw, level * cz)
        else:
            z_cols = np.stack([reader.read(zh * zw, table) for table in z_tables])
            z_escaped = int((z_cols == 2 * k + 1).sum())
            z = merge_escapes(z_cols, np.array(k), reader.read_escapes(z_escaped))
        z_hat = torch.from_numpy(z).reshape(1, cz, zh, zw)
        reader.require(y_least, "the rest of the image")
        indexes = by_z_tiles(lambda z: self.scale_net.indexes(z, level), z_hat.to(device))[0].cpu()
        idx = indexes.reshape(-1).numpy().astype(np.int16)
        order = np.argsort(idx, kind="stable")
        idx_sorted = np.take(idx, order)
        del idx
        counts = np.bincount(idx_sorted, minlength=len(tables["y"]))
        cols = np.concatenate([reader.read(int(counts[i]), tables["y"][i]) for i in range(len(tables["y"]))])
        half = tables["y_half_widths"][idx_sorted]
        del idx_sorted
        y_escaped = int(np.count_nonzero(cols == 2 * half + 1))
        sym_sorted = merge_escapes(cols, half, reader.read_escapes(y_escaped))
        del cols, half
        reader.finish()
        sym = np.empty(sym_sorted.shape, dtype=np.int64)
        sym[order] = sym_sorted
        symbols = torch.from_numpy(sym).reshape(self.latent_channels, height, width)
        return LatentCode(z_hat[0].long(), symbols, indexes, offset)

    @torch.no_grad()
    def reconstruct(self, code: LatentCode, level: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """LatentCode -> y^ (1, C, h, w): (s + mu_g) / g."""
        lv = torch.tensor([level], device=device)
        g, gz = self._gains(lv)
        z_hat = code.z_hat[None].to(device=device, dtype=dtype)
        mu_g = by_z_tiles(self.hyper_mean, z_hat / gz.to(dtype)) * g.to(dtype)
        return (code.symbols[None].to(device=device, dtype=dtype) + mu_g) / g.to(dtype)
