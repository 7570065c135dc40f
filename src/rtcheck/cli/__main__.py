"""``python -m rtcheck.cli``: the command line."""

import sys

from rtcheck.cli import main

sys.exit(main())
