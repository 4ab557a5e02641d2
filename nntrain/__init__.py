"""nntrain: train neural networks on tabular data from a YAML config."""

__version__ = "0.1.0"
