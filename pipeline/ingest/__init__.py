"""Ingestion: landing files → validated rows → committed batches (DTS §2–§5)."""
