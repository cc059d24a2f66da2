"""The ORC source."""
