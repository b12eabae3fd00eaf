"""Optional dependencies: a tool whose extra is not installed says which one to install.

The runtime (compress, decompress, info) needs only the core dependencies.
Training needs `gencodec[train]`, evaluation and demos `gencodec[eval]`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .errors import GencodecError


class MissingExtraError(GencodecError):
    """A tool needs a package from one of gencodec's optional extras."""


@contextlib.contextmanager
def require_extra(extra: str, what: str) -> Iterator[None]:
    """Turn an ImportError of a third-party package inside the block into a one-line MissingExtraError.

    `what` names the tool for the message, e.g. "'gencodec eval'". Missing
    modules of gencodec itself are bugs, not missing extras, and pass through.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if not package or package == "gencodec":
            raise
        raise MissingExtraError(
            f"{what} needs the optional package '{package}', which is not installed: "
            f"pip install 'gencodec[{extra}]'") from exc
