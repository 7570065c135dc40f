"""Criterion 19 before a plan exists: what the contours alone prove."""
