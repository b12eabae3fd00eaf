"""Codec: the user-facing compress / decompress over a GenCodecModel.

    image -> RGB uint8 -> pad to a multiple of 64 -> E -> latent codec -> ANS payload
          -> header + payload + checksum = the file
    file  -> checks (magic, length, checksum, version, model fingerprint)
          -> latent codec decode -> y^ -> G -> crop -> image
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import bitstream
from .entropy.hyperprior import LatentCode
from .errors import CorruptFileError, GencodecError, ModelMismatchError
from .imageio import crop_to, image_to_tensor, load_image, pad_to_multiple, tensor_to_image
from .model import GenCodecModel


@dataclass
class FileInfo:
    """What `gencodec info` reports about a compressed file."""

    bytes: int
    width: int
    height: int
    level: int
    fingerprint: int
    version: int

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / (self.width * self.height)


class Codec:
    """Compresses images into gencodec files and back, with one model.

    >>> codec = gencodec.load("path/to/model")          # doctest: +SKIP
    >>> data = codec.compress("photo.jpg", level=3)     # doctest: +SKIP
    >>> image = codec.decompress(data)                  # a PIL image  # doctest: +SKIP
    """

    def __init__(self, model: GenCodecModel, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.fingerprint = model.fingerprint()
        self.fingerprint16 = int(self.fingerprint[-4:], 16)

    @property
    def n_levels(self) -> int:
        return self.model.n_levels

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
        x = image_to_tensor(load_image(image))
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.model.padding_multiple).to(self.device, self.model.dtype)
        y = self.model.analysis(x)
        return self.model.latent_codec.analyse(y, level), height, width

    def compress(self, image, level: int | None = None) -> bytes:
        """Any image (path, bytes, PIL image, numpy array) -> gencodec file bytes."""
        level = self._check_level(self.default_level if level is None else level)
        code, height, width = self.analyse(image, level)
        return self.encode_code(code, level, height, width)

    def encode_code(self, code: LatentCode, level: int, height: int, width: int) -> bytes:
        payload, _ = self.model.latent_codec.encode(code, level)
        header = bitstream.Header(level=level, fingerprint=self.fingerprint16, width=width, height=height)
        return bitstream.pack_file(header, payload)

    # -- decoder ------------------------------------------------------------------------------
    def info(self, data: bytes) -> FileInfo:
        h = bitstream.peek_header(data)
        return FileInfo(len(data), h.width, h.height, h.level, h.fingerprint, h.version)

    def decode_code(self, data: bytes) -> tuple[LatentCode, bitstream.Header]:
        """File bytes -> (integer code, header), after every integrity check."""
        header, payload = bitstream.unpack_file(bytes(data))
        if header.fingerprint != self.fingerprint16:
            raise ModelMismatchError(
                f"file was encoded with another model (fingerprint {header.fingerprint:04x}, "
                f"this model is {self.fingerprint16:04x}); decode it with the model that made it")
        if header.level >= self.n_levels:
            raise CorruptFileError(f"file is corrupted (level {header.level} does not exist in this model)")
        m = self.model.padding_multiple
        f = self.model.analysis.downsampling
        h_lat = -(-header.height // m) * m // f
        w_lat = -(-header.width // m) * m // f
        code = self.model.latent_codec.decode(payload, header.level, h_lat, w_lat, device=self.device)
        return code, header

    @torch.no_grad()
    def decompress(self, data: bytes) -> Image.Image:
        """gencodec file bytes -> PIL RGB image (the base reconstruction)."""
        code, header = self.decode_code(data)
        y_hat = self.model.latent_codec.reconstruct(code, header.level, self.model.dtype, self.device)
        x_bar = crop_to(self.model.synthesis(y_hat), header.height, header.width)
        return Image.fromarray(tensor_to_image(x_bar.float().cpu()))
