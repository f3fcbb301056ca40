"""Followup: keeps a sales team's promises to its clients."""

__version__ = "0.1.0"
