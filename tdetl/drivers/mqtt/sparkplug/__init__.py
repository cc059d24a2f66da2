"""Sparkplug B over MQTT as a source (``sparkplugb+mqtt://``)."""
