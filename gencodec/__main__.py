"""``python -m gencodec``: the same command line as the ``gencodec`` script."""

import sys

from gencodec.cli import main

if __name__ == "__main__":
    sys.exit(main())
