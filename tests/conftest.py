"""Shared fixtures live in tests/fixtures/<topic>.py, one module per topic, loaded here."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["fixtures.data", "fixtures.models"]
