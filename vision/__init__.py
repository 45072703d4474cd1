"""Frame analysis: sources, motion, zones and tripwires, quality diagnosis, privacy masks."""
