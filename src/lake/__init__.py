"""Delta Lake side: table paths and creation, idempotent writers, table summaries."""
