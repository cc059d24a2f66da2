"""Mechanics several drivers share, written once: micro-batching, message sources, time windows
of series, JSON over HTTP, file output."""
