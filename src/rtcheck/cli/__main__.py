"""``python -m rtcheck.cli``: the command line."""

from rtcheck.cli import console

console()
