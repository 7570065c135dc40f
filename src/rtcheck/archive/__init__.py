"""Whole archives: indexing folders into plans, checking them in parallel, the results
database."""
