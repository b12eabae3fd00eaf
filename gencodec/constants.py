"""Constants shared by the runtime, the command line and the tools; imports nothing heavy.

`gencodec --help` and `gencodec info` read these without loading torch.
"""

#: The model `gencodec.load()` and the command line use when none is named.
DEFAULT_MODEL = "pixel"
#: Another name for DEFAULT_MODEL, whichever model that is.
DEFAULT_ALIAS = "default"
#: The name of a freshly initialised model (seed 0): files round-trip, pictures are noise.
UNTRAINED = "untrained"
#: The largest image side, in pixels, that an image or a file header may have.
MAX_SIDE = 16384
#: The pixel budget: the most pixels (width x height) compress and decompress accept unless told
#: otherwise (`max_pixels`, `--max-pixels`). Large images run in tiles, so memory grows with the tile,
#: but the output image and the input's pixels still take memory, and time grows with the pixels.
DEFAULT_MAX_PIXELS = 8192 * 8192
#: The suffix of a compressed file.
SUFFIX = ".gcz"
#: The suffixes `find_images` collects (compared in lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: Samplers the generative decoder can run (diffusers' DDIM, DPM-Solver++, Euler).
SCHEDULERS = ("ddim", "dpmsolver", "euler")

#: Pixels per side of one thumbnail pixel: the thumb-PSNR of the evaluation, the training's thumbnail
#: terms (consistency, thumb_distortion) and the encoder search's thumb_weight all see the same thumbnail.
THUMBNAIL = 8

#: The detail measure of the evaluation (metrics.detail_ratios) and the training's detail term
#: (losses.detail_log_l1) see the same thing: the luma (ITU-R BT.601 weights: texture is judged on
#: brightness, as a viewer judges it) minus its 5x5 box blur, its mean square in windows of DETAIL_WINDOW
#: pixels, floored at DETAIL_FLOOR (one 8-bit level squared, a photo's own grain) before any ratio.
LUMA = (0.299, 0.587, 0.114)
DETAIL_WINDOW = 8
DETAIL_FLOOR = (1.0 / 255.0) ** 2

# The most encoder-search steps one may ask for (gencodec.encoder_search): each costs a pass of the
# synthesis transform and its gradient.
MAX_SEARCH_STEPS = 200
