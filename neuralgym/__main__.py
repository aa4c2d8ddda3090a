"""``python -m neuralgym ...`` (and ``torchrun -m neuralgym train ...``): the CLI."""

import sys

from neuralgym.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
