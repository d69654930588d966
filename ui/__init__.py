"""nerveseg.ui."""
