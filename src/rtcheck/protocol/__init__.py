"""What a protocol says: its limits and derived structures, TG-263 names, lesions, the LQ
model."""
