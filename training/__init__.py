"""nerveseg.training."""
