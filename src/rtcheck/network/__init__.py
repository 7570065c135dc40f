"""DICOM networking: receiving plans from a planning system or a PACS."""
