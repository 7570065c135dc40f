"""Files to datasets: reading DICOM files, checking them, and linking a plan's RT objects;
the dose grids and the contour planes they hold."""
