"""BioTalk: benchmarks, encoders and multimodal models for DNA sequences and enzyme function text."""

import os

# Offline by design: models load from local folders, never from the Hugging Face Hub. Set here, before any
# of our modules imports transformers, datasets or tokenizers (they read these once, on import).
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
