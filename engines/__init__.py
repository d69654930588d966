"""nerveseg.engines."""
