"""Synthetic DICOM RT plans written with pydicom: the building blocks and the thorax phantom."""
