"""diffusers' UNet2DModel, imported without the rest of diffusers' model zoo.

`diffusers.models.unets` and `diffusers.models.transformers` import every
UNet and transformer diffusers has; through its single-file loaders that
pulls in every scheduler and scipy.stats: about 1.7 s of a 2-core machine's
start-up, for a class that needs two small modules from those packages.
Here the two packages are entered without running their __init__, only the
modules UNet2DModel needs are loaded, and the packages are then forgotten
again, so that a later `import diffusers.models.unets` runs normally. Should a
diffusers release lay these modules out otherwise, the plain import is used.
"""

from __future__ import annotations

import importlib.util
import sys

_HEAVY_PACKAGES = ("diffusers.models.unets", "diffusers.models.transformers")


def _import_quickly():
    entered = []
    try:
        for name in _HEAVY_PACKAGES:
            if name in sys.modules:
                continue
            spec = importlib.util.find_spec(name)
            sys.modules[name] = importlib.util.module_from_spec(spec)  # not executed
            entered.append(name)
        from diffusers.models.unets.unet_2d import UNet2DModel
        return UNet2DModel
    finally:
        for name in entered:
            sys.modules.pop(name, None)
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and child in vars(sys.modules[parent]):
                delattr(sys.modules[parent], child)


try:
    UNet2DModel = _import_quickly()
except Exception:  # another layout: import it the usual way
    from diffusers import UNet2DModel  # noqa: F401
