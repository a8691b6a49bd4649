"""Loaders behind :data:`generative.data.DATASETS`, one module per kind of data."""
