"""Limits applied to a plan: limit results and the decision on criterion 19."""
