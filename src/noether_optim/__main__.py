"""``python -m noether_optim``: the ``noether-optim`` command."""

import sys

from noether_optim.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
