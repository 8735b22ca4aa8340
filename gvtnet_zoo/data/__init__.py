"""Reading images, pairing, normalization, patch sampling and synthetic data."""
