# cython: language_level=3
"""Placeholder extension: proves the Cython build works until the raw-block codec lands here."""


def built() -> bool:
    return True
