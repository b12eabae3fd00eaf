"""Tiles: run_tiled's blending (also at encoder scales), the decoder's BlendedCanvas, and the codec's
tiled encoder against its whole-image path."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from gencodec import codec as codec_module
from gencodec.tiling import BlendedCanvas, run_tiled, tile_starts

from .conftest import smooth_image


def test_tiles_of_one_image_blend_back_into_it():
    """Identity tiles, blended by run_tiled (whole outputs) or by BlendedCanvas (row band by row band, to
    uint8), give back the image: the weights are normalised everywhere, whatever the overlaps."""
    image = torch.rand(1, 3, 200, 328)
    whole = run_tiled(lambda t: (t,), image, tile=64, overlap=24, out_scales=(1,))[0]
    torch.testing.assert_close(whole, image)
    tops, lefts = tile_starts(200, 64, 24), tile_starts(328, 64, 24)
    canvas = BlendedCanvas(190, 300, (200, 328), tops, lefts, (64, 64), 24)
    for row, top in enumerate(tops):
        for left in lefts:
            canvas.add(top, left, image[..., top: top + 64, left: left + 64])
        canvas.finish_row(row)
    expected = torch.round(image[0, :, :190, :300] * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(canvas.image.astype(int) - expected).max() <= 1  # float sums round either way at .5


def test_run_tiled_takes_outputs_smaller_than_the_input():
    """An encoder's output (here 2x2 average pooling of each tile) is blended at its own scale."""
    image = torch.rand(1, 3, 96, 160)
    pooled = run_tiled(lambda t: (torch.nn.functional.avg_pool2d(t, 2),), image, tile=32, overlap=8,
                       out_scales=(Fraction(1, 2),), align=2)[0]
    torch.testing.assert_close(pooled, torch.nn.functional.avg_pool2d(image, 2))


def test_the_tiled_encoder_is_close_to_the_whole_one_and_its_files_decode(rich_codec, monkeypatch):
    image = smooth_image(192, 256, seed=3)
    whole, height, width, mean = rich_codec._analysis_transform(image)
    monkeypatch.setattr(codec_module, "ENCODE_TILE", 128)
    monkeypatch.setattr(codec_module, "ENCODE_OVERLAP", 64)
    tiled, tiled_height, tiled_width, tiled_mean = rich_codec._analysis_transform(image)
    assert (tiled_height, tiled_width) == (height, width) == (192, 256) and tiled.shape == whole.shape
    assert (tiled_mean == mean).all()
    assert (tiled - whole).abs().mean() < 0.1 * whole.abs().mean()
    decoded = rich_codec.decompress(rich_codec.compress(image, level=1))
    assert decoded.size == (256, 192)


def test_the_hyper_synthesis_in_tiles_gives_exactly_the_same_indexes(rich_codec, monkeypatch):
    """The integer scale network run tile by tile (with margins) equals one pass, bit for bit; the float
    mean comes within rounding."""
    from gencodec.entropy import hyperprior

    lc = rich_codec.model.latent_codec
    torch.manual_seed(0)
    z = torch.randint(-3, 4, (1, lc.hyper_latent_channels, 21, 27)).float()
    whole_indexes, whole_mean = lc.scale_net.indexes(z, 2), lc.hyper_mean(z)
    monkeypatch.setattr(hyperprior, "Z_TILE", 8)
    assert torch.equal(hyperprior.by_z_tiles(lambda t: lc.scale_net.indexes(t, 2), z), whole_indexes)
    torch.testing.assert_close(hyperprior.by_z_tiles(lc.hyper_mean, z), whole_mean, atol=1e-5, rtol=1e-5)
