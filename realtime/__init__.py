"""nerveseg.realtime."""
