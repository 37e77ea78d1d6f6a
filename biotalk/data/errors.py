"""Errors of the benchmark builder that stop a build (bad single records are rejected, not raised)."""


class InputError(ValueError):
    """A missing input path or an input with nothing usable in it; the message names the path."""
