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

# The most encoder-search steps one may ask for (gencodec.encoder_search): each costs a pass of the
# synthesis transform and its gradient.
MAX_SEARCH_STEPS = 200
