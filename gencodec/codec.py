"""Codec: the user-facing compress / decompress over a model of either family (gencodec.model.CodecModel).

    image -> RGB uint8 -> pad to a multiple of 64 -> E -> latent codec (-> encoder search) -> ANS payload
          -> header + payload + checksum = the file
    file  -> checks (magic, length, checksum, version, model fingerprint)
          -> latent codec decode -> y^ -> G -> x_bar                     (realism 0)
          -> seeded few-step diffusion of the residual r, conditioned on x_bar and G's features
          -> x_bar + realism * r -> render -> crop -> image              (realism 1: fully generative)

The pixel family works on the image itself (render is the identity); the
latent family (gencodec.latent_model) works on a frozen autoencoder's latent:
E starts with the autoencoder's encoder, x_bar and r are latents, and render
is the autoencoder's decoder.

Large images run in overlapping tiles (gencodec.tiling), so that memory grows
with the tile, not the image: the encoder in tiles of the image, blended in
y; the decoder from y^ to pixels, the whole chain (G, the denoiser, the
renderer) one tile at a time, blended into the output image one row of tiles
at a time. The noise of a tiled decode is drawn block by block, each block
from the seed and its position (gencodec.diffusion.block_noise), so a tile
needs only its own. An image within one tile runs whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from PIL import Image

from . import bitstream, colour_offset
from .constants import DEFAULT_MAX_PIXELS, MAX_SEARCH_STEPS, SCHEDULERS
from .diffusion import block_noise, sample
from .encoder_search import search_code
from .entropy.hyperprior import LatentCode
from .errors import CorruptFileError, GencodecError, ModelMismatchError
from .image_checks import check_pixel_budget
from .imageio import (
    crop_to,
    image_to_tensor,
    load_image,
    pad_to_multiple,
    tensor_to_image,
)
from .model import CodecModel
from .rungs import coded_size, downscale_image, keep_low_frequencies, rungs_of, upscale_image
from .tiling import BlendedCanvas, run_tiled, tile_starts

# Tiles, in image pixels: large enough that a Kodak-sized image runs whole, small enough to bound memory.
ENCODE_TILE, ENCODE_OVERLAP = 1024, 128
DECODE_TILE, DECODE_OVERLAP = 1024, 128

# compress_to_target: how many levels above the binary search's answer are checked as well. The first
# level of every larger coded size is checked too (_rung_starts): a file dips where the ladder moves to a
# larger picture at a lower coding level, which can be more than TARGET_LOOKAHEAD levels up.
TARGET_LOOKAHEAD = 2
# compress_to_target: the most the encoder search takes off a file, as a share of its size without the
# search. Measured: 9-30% on Kodak's 768x512 photos, up to 40% on 192x128 pictures (whose 4x-smaller rungs
# are mostly side information). A level whose plain file is larger than the budget by more than this is
# not searched.
SEARCH_MAX_SAVING = 0.5


@dataclass
class Analysis:
    """The analysis of a picture the encoder codes: y, and the picture (uint8) that the encoder search
    measures its codes against (gencodec.encoder_search)."""

    y: torch.Tensor
    pixels: np.ndarray


@dataclass
class FileInfo:
    """What `gencodec info` reports about a compressed file."""

    bytes: int
    width: int
    height: int
    level: int
    fingerprint: int
    version: int
    #: The factor by which the photo was made smaller before it was coded (gencodec.rungs); 1: full size.
    downscale: int = 1

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / (self.width * self.height)


class Codec:
    """Compresses images into gencodec files and back, with one model.

    >>> codec = gencodec.load("path/to/model")          # doctest: +SKIP
    >>> data = codec.compress("photo.jpg", level=3)     # doctest: +SKIP
    >>> image = codec.decompress(data)                  # a PIL image  # doctest: +SKIP
    """

    def __init__(self, model: CodecModel, device: str | torch.device | None = None, tune: bool = True,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, search_steps: int | None = None):
        """`tune`: lay the model out for speed on the device (CodecModel.tune_for); False runs it as built.
        `max_pixels`: the pixel budget; larger images (to compress, or in a file's header) are refused
        before any work (None: none). `search_steps`: the encoder search's steps for every picture
        (gencodec.encoder_search; 0: none, the analysis transform's code as it is); None: as the model's
        encoder settings say for the picture's size, or none where the model has no such settings.
        Decoding is the same either way."""
        if search_steps is not None and (isinstance(search_steps, bool) or not isinstance(search_steps, int)
                                         or not 0 <= search_steps <= MAX_SEARCH_STEPS):
            raise GencodecError(f"search_steps must be an integer in 0..{MAX_SEARCH_STEPS} or None, "
                                f"got {search_steps!r}")
        if search_steps and model.encoder_search is None:
            raise GencodecError("this model has no encoder search settings (encoder.json in its folder), so its "
                                "encoder cannot search (give no search steps)")
        self.max_pixels = max_pixels
        self.search_steps = search_steps
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.fingerprint = model.fingerprint()
        self.fingerprint16 = int(self.fingerprint[-4:], 16)
        self.rungs = rungs_of(model.config, model.n_levels)
        if tune:
            model.tune_for(self.device)

    @property
    def n_levels(self) -> int:
        """The file levels: the rungs of the model's ladder (gencodec.rungs)."""
        return len(self.rungs)

    @property
    def default_level(self) -> int:
        return self.n_levels // 2

    @property
    def is_trained(self) -> bool:
        return self.model.config.trained_steps > 0

    # -- encoder ------------------------------------------------------------------------------
    def _check_level(self, level: int) -> int:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
            raise GencodecError(f"level must be an integer, got {level!r}")
        if not 0 <= level < self.n_levels:
            raise GencodecError(f"level {level} is out of range: this model has levels 0..{self.n_levels - 1}")
        return int(level)

    @torch.no_grad()
    def analyse(self, image, level: int | None = None) -> tuple[LatentCode, int, int]:
        """image -> (integer code, height, width): the encoder up to, not including, the ANS stream."""
        level = self._check_level(self.default_level if level is None else level)
        rung = self.rungs[level]
        ys, height, width, mean = self._analyses(image, {rung.downscale})
        return self._code_at(ys[rung.downscale], rung.level, mean), height, width

    @property
    def codes_colour_offset(self) -> bool:
        """Whether this model's files carry a colour offset (gencodec.colour_offset)."""
        return bool(self.model.config.get("colour_offset", False))

    @property
    def encoder_search(self) -> dict | None:
        """What the encoder search does (None: nothing): the settings that, with the fingerprint, decide
        which file the encoder writes for a photo (an evaluation records them)."""
        settings = self.model.encoder_search
        if settings is None or self.search_steps == 0:
            return None
        return {"steps": self.search_steps, "lambdas": list(settings.lambdas), "work": settings.work,
                "max_steps": settings.max_steps, **({"thumb_weight": settings.thumb_weight}
                                                   if settings.thumb_weight else {})}

    def search_steps_for(self, height: int, width: int) -> int:
        """The encoder search's steps for a coded picture of (height, width) (gencodec.encoder_search). A
        picture above one encoder tile takes none: the search holds the whole synthesis and its gradient."""
        settings = self.model.encoder_search
        if settings is None or height > ENCODE_TILE or width > ENCODE_TILE:
            return 0
        return settings.steps_for(height * width) if self.search_steps is None else self.search_steps

    def _code_at(self, analysis: Analysis, level: int, mean: np.ndarray, search: bool = True) -> LatentCode:
        """An analysis -> the integer code at coding `level` (searched where the encoder searches, unless
        `search` is False), with its colour offset where the model codes one: measured on the realism-0
        picture the decoder will make of it, against the photo's mean colour `mean`."""
        height, width = analysis.pixels.shape[:2]
        steps = self.search_steps_for(height, width) if search else 0
        if steps:
            settings = self.model.encoder_search
            with torch.inference_mode(False), torch.enable_grad():
                code = search_code(self.model, analysis.y, analysis.pixels, level, steps, settings.lambdas[level],
                                   settings.thumb_weight)
        else:
            code = self.model.latent_codec.analyse(analysis.y, level)
        if self.codes_colour_offset:
            y_hat = self.model.latent_codec.reconstruct(code, level, self.model.dtype, self.device)
            code.colour_offset = colour_offset.measure(self._realism0_preview(y_hat, height, width), mean)
        return code

    def _realism0_preview(self, y_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
        """The realism-0 picture of y^ as the encoder measures its mean colour (uint8): the decoder's own,
        except for the latent family within one tile, where rendering is most of the cost: there the
        latent averaged 2x2 is rendered at half size, whose mean colour is within 1-2 levels of the full
        render's (on Kodak) at a quarter of the work."""
        model = self.model
        if model.space_scale == 1 or max(y_hat.shape[-2:]) > DECODE_TILE // model.downsampling:
            return self._decode_y_hat(y_hat, height, width, 0.0, 1, 0, model.config.diffusion["sampler"])
        half = model.render(torch.nn.functional.avg_pool2d(model.synthesis(y_hat), 2))
        return tensor_to_image(crop_to(half, max(1, height // 2), max(1, width // 2)).float().cpu())

    @torch.no_grad()
    def _analyses(self, image, downscales) -> tuple[dict[int, Analysis], int, int, np.ndarray]:
        """image -> ({downscale: the analysis of the picture coded at it}, height, width, the image's mean
        colour): the expensive, level-independent half of the encoder, once per size the rungs code
        (gencodec.rungs)."""
        pixels = load_image(image, self.max_pixels)
        height, width = pixels.shape[:2]
        pictures = {factor: downscale_image(pixels, factor) for factor in sorted(downscales)}
        ys = {factor: Analysis(self._analysis_of(picture), picture) for factor, picture in pictures.items()}
        return ys, height, width, colour_offset.mean_colour(pixels)

    @torch.no_grad()
    def _analysis_transform(self, image) -> tuple[torch.Tensor, int, int, np.ndarray]:
        """image -> (y, height, width, the image's mean colour) at full size."""
        ys, height, width, mean = self._analyses(image, {1})
        return ys[1].y, height, width, mean

    def _analysis_of(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 pixels -> y, in tiles when the picture is large."""
        height, width = pixels.shape[:2]
        model, multiple = self.model, self.model.padding_multiple
        if height <= ENCODE_TILE and width <= ENCODE_TILE:
            x = pad_to_multiple(image_to_tensor(pixels), multiple).to(self.device, model.dtype)
            return model.encode(x)
        # In tiles, each made float only when it runs: the whole image stays uint8 (replicate padding, as
        # pad_to_multiple's).
        padded = np.pad(pixels, ((0, -height % multiple), (0, -width % multiple), (0, 0)), mode="edge")
        del pixels

        def encode_tile(tile: torch.Tensor) -> tuple[torch.Tensor]:
            x = tile.to(torch.float32).div_(255.0).to(self.device, model.dtype).contiguous()
            return (model.encode(x),)

        return run_tiled(encode_tile, torch.from_numpy(padded).permute(2, 0, 1)[None], ENCODE_TILE, ENCODE_OVERLAP,
                         out_scales=(Fraction(1, model.downsampling),), align=multiple)[0]

    @torch.no_grad()
    def _encode_level(self, ys: dict[int, Analysis], level: int, height: int, width: int,
                      mean: np.ndarray, search: bool = True) -> bytes:
        """The analyses of an image of (height, width) -> the file at `level`: the per-level half (latent
        coding, the encoder search unless `search` is False, colour offset and the ANS stream)."""
        code = self._code_at(ys[self.rungs[level].downscale], self.rungs[level].level, mean, search)
        return self.encode_code(code, level, height, width)

    def compress(self, image, level: int | None = None) -> bytes:
        """Any image (path, bytes, PIL image, numpy array) -> gencodec file bytes."""
        level = self._check_level(self.default_level if level is None else level)
        code, height, width = self.analyse(image, level)
        return self.encode_code(code, level, height, width)

    @torch.no_grad()
    def compress_batch(self, images, level: int | None = None, batch_size: int = 8) -> list:
        """Several images -> for each, the file compress() makes (bytes, the same bytes), or the GencodecError
        that stopped it (a bad image does not stop the others).

        Images of the same padded size go through the analysis transform together, up to `batch_size` at a
        time (on a GPU the gain is large; on a CPU small); an image above the encoder's tile runs alone, in
        tiles, as in compress().
        """
        level = self._check_level(self.default_level if level is None else level)
        multiple = self.model.padding_multiple
        results: list = [None] * len(images)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for index, image in enumerate(images):
            try:
                pixels = load_image(image, self.max_pixels)
                height, width = pixels.shape[:2]
                if height > ENCODE_TILE or width > ENCODE_TILE or self.rungs[level].downscale > 1:
                    results[index] = self.compress(pixels, level)
                    continue
            except GencodecError as exc:
                results[index] = exc
                continue
            groups.setdefault((-(-height // multiple), -(-width // multiple)), []).append((index, pixels))
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start: start + batch_size]
                x = torch.cat([pad_to_multiple(image_to_tensor(pixels), multiple) for _, pixels in chunk])
                y = self.model.encode(x.to(self.device, self.model.dtype))
                for row, (index, pixels) in enumerate(chunk):
                    results[index] = self._encode_level({1: Analysis(y[row: row + 1], pixels)}, level,
                                                        *pixels.shape[:2],
                                                        colour_offset.mean_colour(pixels))
        return results

    def encode_code(self, code: LatentCode, level: int, height: int, width: int) -> bytes:
        """The code analyse() made at `level` of an image of (height, width) -> the file."""
        payload, _ = self.entropy_code(code, level, height, width)
        header = bitstream.Header(level=level, fingerprint=self.fingerprint16, width=width, height=height)
        return bitstream.pack_file(header, payload)

    def entropy_code(self, code: LatentCode, level: int, height: int, width: int) -> tuple[bytes, float]:
        """The code analyse() made at `level` -> (ANS payload, its information content in bits)."""
        rung = self.rungs[level]
        return self.model.latent_codec.encode(code, rung.level, coded_size(width, height, rung.downscale))

    # -- rate targeting -----------------------------------------------------------------------
    def sizes_by_level(self, image) -> list[int]:
        """The real file size in bytes at every level, 0..N-1 (the analysis transform runs once)."""
        ys, height, width, mean = self._analyses(image, {rung.downscale for rung in self.rungs})
        return [len(self._encode_level(ys, level, height, width, mean)) for level in range(self.n_levels)]

    def compress_to_target(self, image, bpp: float | None = None, max_bytes: int | None = None) -> bytes:
        """Compress at the highest level whose real file fits a size budget.

        Give exactly one of `max_bytes` (the file is at most that many bytes)
        or `bpp` (8 * bytes / (width * height) is at most that). The analysis
        transform runs once. The levels are binary-searched by the real size
        of their files without the encoder search (cheap), then the levels
        just above the answer, and the first level of each larger coded
        picture, are checked too, so that a non-monotone step in the ladder
        cannot hide a higher level that fits. Where the
        encoder searches (gencodec.encoder_search), only then does it search,
        at that level, and it climbs the same way by searched files (skipping
        levels whose plain file is too large for any search to bring within
        the budget, SEARCH_MAX_SAVING): the search makes most files smaller,
        so it can lift the answer, and it runs a few times rather than at
        every level tried. Should the searched file at the answer come out
        larger than the budget, and no level above fit, the file without the
        search, which fits, is returned. Raises
        GencodecError when even the smallest file is too big.
        `info(data).level` tells which level was chosen.
        """
        if (bpp is None) == (max_bytes is None):
            raise GencodecError("give exactly one target: bpp or max_bytes")
        if max_bytes is not None:
            if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes <= 0:
                raise GencodecError(f"max_bytes must be a positive integer, got {max_bytes!r}")
            max_bytes = int(max_bytes)
        else:
            if (isinstance(bpp, bool) or not isinstance(bpp, (int, float, np.integer, np.floating))
                    or not math.isfinite(bpp) or bpp <= 0):
                raise GencodecError(f"bpp must be a positive number, got {bpp!r}")
            bpp = float(bpp)

        ys, height, width, mean = self._analyses(image, {rung.downscale for rung in self.rungs})
        pixels = width * height

        def fits_size(size: int) -> bool:
            return size <= max_bytes if max_bytes is not None else 8 * size / pixels <= bpp

        def fits(data: bytes) -> bool:
            return fits_size(len(data))

        plain: dict[int, bytes] = {}
        searched: dict[int, bytes] = {}

        def plain_at(level: int) -> bytes:
            if level not in plain:
                plain[level] = self._encode_level(ys, level, height, width, mean, search=False)
            return plain[level]

        def file_at(level: int) -> bytes:
            """The file compress() makes at `level`: searched, where the encoder searches at its size."""
            if level not in searched:
                searches = self.search_steps_for(*ys[self.rungs[level].downscale].pixels.shape[:2])
                searched[level] = (self._encode_level(ys, level, height, width, mean) if searches
                                   else plain_at(level))
            return searched[level]

        def searched_fits(level: int) -> bool:
            """Whether compress()'s file at `level` fits; not searched where no search could bring it in."""
            if level != top and not fits_size(math.ceil(len(plain_at(level)) * (1 - SEARCH_MAX_SAVING))):
                return False
            return fits(file_at(level))

        starts = _rung_starts([rung.downscale for rung in self.rungs])
        lo = _highest_fitting(lambda level: fits(plain_at(level)), self.n_levels, TARGET_LOOKAHEAD, starts)
        top = max(lo, 0)
        top_fits = searched_fits(top)
        reached = _climb(searched_fits, top, self.n_levels, TARGET_LOOKAHEAD, starts)
        if top_fits or reached > top:
            return file_at(reached)
        if lo >= 0:
            return plain_at(lo)  # the search's file at this level came out larger than the budget
        level, size = min(((lv, len(f)) for lv, f in {**plain, **searched}.items()),
                          key=lambda item: (item[1], item[0]))
        if max_bytes is not None:
            raise GencodecError(f"cannot meet {max_bytes} bytes: the smallest file at level {level} "
                                f"is {size} bytes")
        raise GencodecError(f"cannot meet {bpp:g} bpp: the smallest file at level {level} is {size} bytes "
                            f"({8 * size / pixels:.4f} bpp)")

    # -- decoder ------------------------------------------------------------------------------
    def info(self, data: bytes) -> FileInfo:
        h = bitstream.peek_header(data)
        downscale = self.rungs[h.level].downscale if h.level < self.n_levels else 1
        return FileInfo(len(data), h.width, h.height, h.level, h.fingerprint, h.version, downscale)

    def decode_code(self, data: bytes) -> tuple[LatentCode, bitstream.Header]:
        """File bytes -> (integer code, header), after every integrity check."""
        header, payload = bitstream.unpack_file(bytes(data))
        check_pixel_budget(header.height, header.width, self.max_pixels, what="the file's image")
        if header.fingerprint != self.fingerprint16:
            raise ModelMismatchError(
                f"file was encoded with another model (fingerprint {header.fingerprint:04x}, "
                f"this model is {self.fingerprint16:04x}); decode it with the model that made it")
        if header.level >= self.n_levels:
            raise CorruptFileError(f"file is corrupted (level {header.level} does not exist in this model)")
        rung = self.rungs[header.level]
        width, height = coded_size(header.width, header.height, rung.downscale)
        m = self.model.padding_multiple
        f = self.model.downsampling
        h_lat = -(-height // m) * m // f
        w_lat = -(-width // m) * m // f
        code = self.model.latent_codec.decode(payload, rung.level, h_lat, w_lat, (width, height),
                                              device=self.device, with_colour_offset=self.codes_colour_offset)
        return code, header

    @property
    def is_generative(self) -> bool:
        return self.model.denoiser is not None

    def realism_values(self, values) -> list[float]:
        """The distinct realism values this model can decode at, in order: only 0 without a generative decoder."""
        if not self.is_generative:
            return [0.0]
        return list(dict.fromkeys(float(r) for r in values)) or [0.0]

    def _check_decode_options(self, realism, steps, seed, scheduler) -> tuple[float, int, int, str]:
        if realism is None:
            realism = 1.0 if self.is_generative else 0.0
        if isinstance(realism, bool) or not isinstance(realism, (int, float)) or not 0 <= realism <= 1:
            raise GencodecError(f"realism must be a number from 0 to 1, got {realism!r}")
        if realism > 0 and not self.is_generative:
            raise GencodecError("this model has no generative decoder: only realism 0 is available")
        settings = self.model.config.diffusion
        steps = settings["steps"] if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 1000:
            raise GencodecError(f"steps must be an integer from 1 to 1000, got {steps!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise GencodecError(f"seed must be a non-negative integer, got {seed!r}")
        scheduler = settings["sampler"] if scheduler is None else scheduler
        if scheduler not in SCHEDULERS:
            raise GencodecError(f"unknown scheduler {scheduler!r} (choose from {', '.join(SCHEDULERS)})")
        return float(realism), int(steps), int(seed), scheduler

    @torch.no_grad()
    def reconstruct(self, y_hat: torch.Tensor, realism: float, steps: int | None = None, seed: int = 0,
                    scheduler: str | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """y^ -> padded image (1,3,H,W): x_bar + realism * generated residual, rendered from the model's space.

        The whole chain at once: for one tile, or an image within one. `noise` is the sampler's starting
        noise (default: drawn from `seed` for the whole residual).
        """
        model = self.model
        x_bar, features = model.synthesis.forward_with_features(y_hat)
        if realism == 0:
            return self._render(x_bar)
        den = model.denoiser
        condition = den.condition(x_bar, features)
        n_res = den.residual_channels

        def denoise(r_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return den(r_t, t, condition)

        r0 = sample(denoise, (y_hat.shape[0], n_res) + tuple(condition.shape[-2:]), model.config.diffusion,
                    steps=steps,
                    seed=seed, kind=scheduler, device=self.device, dtype=x_bar.dtype, noise=noise)
        residual = den.unfold_image(r0) / model.residual_scale
        if self.codes_colour_offset:
            # The file states the mean colour (gencodec.colour_offset): the generated detail may not move it.
            residual = residual - residual.mean(dim=(-2, -1), keepdim=True)
        return self._render(x_bar + realism * residual)

    def _render(self, s: torch.Tensor) -> torch.Tensor:
        """The model's working space -> image (the identity for the pixel family)."""
        return s if self.model.space_scale == 1 else self.model.render(s)

    @property
    def _residual_per_y(self) -> Fraction:
        """The denoiser's residual positions per y position, per side."""
        model = self.model
        return Fraction(model.downsampling, model.space_scale * model.denoiser.fold)

    @torch.no_grad()
    def _decode_in_tiles(self, y_hat: torch.Tensor, height: int, width: int, realism: float, steps: int, seed: int,
                         scheduler: str) -> np.ndarray:
        """y^ of a large image -> the uint8 image, one tile of the whole chain at a time (module docstring)."""
        model = self.model
        scale = model.downsampling  # image pixels per y position
        tile, overlap = DECODE_TILE // scale, DECODE_OVERLAP // scale
        h, w = y_hat.shape[-2:]
        tops, lefts = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
        th, tw = min(tile, h), min(tile, w)
        canvas = BlendedCanvas(height, width, (h * scale, w * scale), [t * scale for t in tops],
                               [left * scale for left in lefts], (th * scale, tw * scale), overlap * scale)
        for row, top in enumerate(tops):
            for left in lefts:
                noise = None
                if realism > 0:
                    to_residual = self._residual_per_y
                    noise = block_noise(seed, model.denoiser.residual_channels, int(top * to_residual),
                                        int(left * to_residual), int(th * to_residual), int(tw * to_residual))
                tile_image = self.reconstruct(y_hat[..., top: top + th, left: left + tw], realism, steps, seed,
                                              scheduler, noise=noise)
                canvas.add(top * scale, left * scale, tile_image)
            canvas.finish_row(row)
        return canvas.image

    @torch.no_grad()
    def decompress_batch(self, files, realism: float | None = None, steps: int | None = None, seed: int = 0,
                         scheduler: str | None = None, batch_size: int = 8) -> list:
        """Several files -> for each, its image as decompress() decodes it with these settings (each from its
        own noise, drawn from `seed`), or the GencodecError that stopped it (a bad file does not stop the
        others).

        Files whose latents have the same size go through the decoder together, up to `batch_size` at a
        time; one larger than the decoder's tile is decoded alone, in tiles. Batched float kernels round
        differently, so a few pixel values may differ by a level from decompress(), as across thread counts;
        the decoded integer code is the same.
        """
        realism, steps, seed, scheduler = self._check_decode_options(realism, steps, seed, scheduler)
        results: list = [None] * len(files)
        groups: dict[tuple[int, ...], list[tuple[int, torch.Tensor, bitstream.Header]]] = {}
        tile = DECODE_TILE // self.model.downsampling
        for index, data in enumerate(files):
            try:
                code, header = self.decode_code(data)
                rung = self.rungs[header.level]
                if rung.downscale > 1:  # a smaller picture, upsampled: one at a time, as decompress does it
                    results[index] = self._picture_of(code, header, realism, steps, seed, scheduler)
                    continue
                y_hat = self.model.latent_codec.reconstruct(code, rung.level, self.model.dtype, self.device)
                if max(y_hat.shape[-2:]) > tile:
                    results[index] = self.decompress(data, realism, steps, seed, scheduler)
                    continue
            except GencodecError as exc:
                results[index] = exc
                continue
            groups.setdefault(tuple(y_hat.shape), []).append((index, y_hat, header, code.colour_offset))
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start: start + batch_size]
                noise = None
                if realism > 0:  # each image's own noise, as decompress draws it for one
                    shape = (1, self.model.denoiser.residual_channels,
                             *(int(side * self._residual_per_y) for side in chunk[0][1].shape[-2:]))
                    noise = torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(seed))
                                       for _ in chunk])
                x = self.reconstruct(torch.cat([y for _, y, _, _ in chunk]), realism, steps, seed, scheduler, noise)
                for row, (index, _, header, offset) in enumerate(chunk):
                    image = crop_to(x[row: row + 1], header.height, header.width)
                    results[index] = Image.fromarray(colour_offset.apply(tensor_to_image(image.float().cpu()), offset))
        return results

    def decompress(self, data: bytes, realism: float | None = None, steps: int | None = None, seed: int = 0,
                   scheduler: str | None = None) -> Image.Image:
        """gencodec file bytes -> PIL RGB image.

        realism: 0 gives the distortion-optimal base reconstruction x_bar, 1
        the fully generative one, values between blend the generated
        residual in linearly (default: 1 when the model has a generative
        decoder, else 0). steps and seed fix the sampling: the same file,
        seed and steps give the same pixels on the same machine and thread
        count (across thread counts or machines, a few values may move by a
        level; the decoded integer code never changes). The file does not
        store any of these: they are the decoder's choice.
        """
        realism, steps, seed, scheduler = self._check_decode_options(realism, steps, seed, scheduler)
        code, header = self.decode_code(data)
        return self._picture_of(code, header, realism, steps, seed, scheduler)

    def _picture_of(self, code: LatentCode, header: bitstream.Header, realism: float, steps: int, seed: int,
                    scheduler: str) -> Image.Image:
        """A decoded code -> the image at the header's size, through its rung (gencodec.rungs)."""
        rung = self.rungs[header.level]
        y_hat = self.model.latent_codec.reconstruct(code, rung.level, self.model.dtype, self.device)
        if rung.downscale == 1:
            image = self._decode_y_hat(y_hat, header.height, header.width, realism, steps, seed, scheduler)
            return Image.fromarray(colour_offset.apply(image, code.colour_offset))
        width, height = coded_size(header.width, header.height, rung.downscale)
        small = colour_offset.apply(self._decode_y_hat(y_hat, height, width, 0.0, steps, seed, scheduler),
                                    code.colour_offset)
        picture = upscale_image(small, header.width, header.height)
        if realism == 0:
            return Image.fromarray(picture)
        drawn = self._regenerate(picture, rung.regenerate, steps, seed, scheduler)
        blended = picture.astype(np.float32) + realism * (drawn.astype(np.float32) - picture)
        return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))

    def _regenerate(self, picture: np.ndarray, level: int, steps: int, seed: int, scheduler: str) -> np.ndarray:
        """An upsampled realism-0 picture -> the generative decoder's picture of it (gencodec.rungs): the
        picture analysed again at full size and coding level `level` (nothing of it is in the file) and
        decoded at realism 1, with its low frequencies replaced by the picture's, so that it adds detail
        and never moves the layout or the colours the file carries (gencodec.rungs.keep_low_frequencies)."""
        y = self._analysis_of(picture)
        code = self.model.latent_codec.analyse(y, level)
        y_hat = self.model.latent_codec.reconstruct(code, level, self.model.dtype, self.device)
        drawn = self._decode_y_hat(y_hat, *picture.shape[:2], 1.0, steps, seed, scheduler)
        return keep_low_frequencies(drawn, picture)

    def _decode_y_hat(self, y_hat: torch.Tensor, height: int, width: int, realism: float, steps: int, seed: int,
                      scheduler: str) -> np.ndarray:
        """y^ -> the uint8 image (height, width, 3), in tiles when it is large (before any colour offset)."""
        if max(y_hat.shape[-2:]) > DECODE_TILE // self.model.downsampling:
            return self._decode_in_tiles(y_hat, height, width, realism, steps, seed, scheduler)
        x = crop_to(self.reconstruct(y_hat, realism, steps, seed, scheduler), height, width)
        return tensor_to_image(x.float().cpu())


def _rung_starts(downscales: list[int]) -> tuple[int, ...]:
    """The levels (above 0) where the coded picture's size changes: each is the cheapest level of its size,
    so its file can be smaller than those of the levels just below it."""
    return tuple(level for level in range(1, len(downscales)) if downscales[level] != downscales[level - 1])


def _highest_fitting(fits, n_levels: int, lookahead: int, starts: tuple[int, ...] = ()) -> int:
    """The highest level 0..n_levels-1 for which fits(level) holds, or -1: binary search for the boundary,
    then the `lookahead` levels above the answer and the `starts` above it are tried too, climbing while
    one fits."""
    lo, hi = -1, n_levels  # `lo` fits (or is -1), `hi` does not (or is n_levels)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return _climb(fits, lo, n_levels, lookahead, starts)


def _climb(fits, level: int, n_levels: int, lookahead: int, starts: tuple[int, ...] = ()) -> int:
    """From `level`, up to the highest level for which fits(level) holds among the `lookahead` levels
    above it and the `starts` (_rung_starts) above those, again from there, until none does; the level
    reached. The candidates are tried from the top down, so a level that fits ends the round early."""
    tried: set[int] = set()
    while True:
        candidates = set(range(level + 1, min(level + 1 + lookahead, n_levels)))
        candidates |= {up for up in starts if level < up < n_levels}
        above = None
        for up in sorted(candidates - tried, reverse=True):
            tried.add(up)
            if fits(up):
                above = up
                break
        if above is None:
            return level
        level = above
