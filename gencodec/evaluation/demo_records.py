"""What `gencodec demo` measured: its photos and rows, the data that the page
(gencodec.evaluation.demo_page) is written from and the run
(gencodec.evaluation.demo) fills in. It imports neither of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from .crops import Box

#: The crop window's side in the original, and how much it is enlarged on the page.
CROP_SIDE = 128
CROP_ZOOM = 2
CROPS = "crops"


@dataclass
class Shown:
    """One reconstruction on the page: its PNG, its crop, its file's size and its quality."""
    file: str            # the decoded image (PNG), relative to the demo folder
    crop: str            # the crop window of it, enlarged
    coded_file: str      # the file that was decoded: our .gcz or the classical file
    bytes: int
    bpp: float
    psnr: float
    lpips: float | None
    codec: str = "gencodec"
    thumb_psnr: float | None = None          # layout and colour (gencodec.evaluation.metrics.thumb_psnr)
    colour_bias: list[float] | None = None   # mean decoded - original per channel, R G B, in levels
    settings: str = ""   # how a classical file was made (quality, scale)


@dataclass
class DemoPhoto:
    name: str
    file: str
    crop: str
    width: int
    height: int
    box: Box


@dataclass
class DemoRow:
    """One photo at one level: our file decoded at each realism, and the classical file beside it."""
    photo: str
    level: int
    bytes: int
    bpp: float
    ours: dict[float, Shown]
    classical: Shown | None   # None: no classical file fits (or none was searched)
    ours_s: float             # compress plus every decode
    search_s: float           # the classical search, its ranking included


@dataclass
class Demo:
    model_name: str
    trained_steps: int
    levels: list[int]
    realisms: list[float]
    baselines: list[str]
    lpips: bool              # whether LPIPS was measured (and ranked the classical files)
    photos: list[DemoPhoto] = field(default_factory=list)
    rows: list[DemoRow] = field(default_factory=list)
