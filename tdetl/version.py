"""The version, in a module of its own: the backup format records it without importing the package."""

__version__ = "0.1.0"
