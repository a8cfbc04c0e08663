"""Perceptual and statistical distances between image batches (placeholder:
filled by the distances work)."""
