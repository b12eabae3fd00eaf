"""Constants shared by the runtime, the command line and the tools; imports nothing heavy.

`gencodec --help` and `gencodec info` read these without loading torch.
"""

#: The model `gencodec.load()` and the command line use when none is named.
DEFAULT_MODEL = "default"
#: The name of a freshly initialised model (seed 0): files round-trip, pictures are noise.
UNTRAINED = "untrained"
#: The largest image side, in pixels, that an image or a file header may have.
MAX_SIDE = 16384
#: The suffix of a compressed file.
SUFFIX = ".gcz"
#: The suffixes `find_images` collects (compared in lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: Samplers the generative decoder can run (diffusers' DDIM, DPM-Solver++, Euler).
SCHEDULERS = ("ddim", "dpmsolver", "euler")
