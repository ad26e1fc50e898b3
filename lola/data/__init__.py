"""Bundled data: the default scenario (``default.yaml``)."""
