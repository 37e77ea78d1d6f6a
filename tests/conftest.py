"""Shared fixtures live in tests/fixtures/<topic>.py, one module per topic, loaded here."""

# The offline Hugging Face environment is set by ``import biotalk`` (biotalk/__init__.py).
pytest_plugins = ["fixtures.data", "fixtures.models"]
