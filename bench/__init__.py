"""bench: a benchmark and reproduction harness for ten 2024 papers.

Importing this package stays light (no torch): `bench list` must answer instantly.
"""
__version__ = "0.1.0"
