"""``tmq://`` / ``tmq+ws://``: TDengine data subscription as a source."""
