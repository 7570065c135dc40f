"""``python -m rtcheck``: the same as the ``rtcheck`` command."""

from rtcheck.cli import console

console()
