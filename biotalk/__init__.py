"""BioTalk: benchmarks, encoders and multimodal models for DNA sequences and enzyme function text."""

__version__ = "0.1.0"
