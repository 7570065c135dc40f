"""``python -m rtcheck``: the same as the ``rtcheck`` command."""

import sys

from rtcheck.cli import main

sys.exit(main())
