"""Grids and masks to DVHs to metric values: fractional occupancy, derived regions, the DVH
engine, histograms, TG-263 metrics."""
