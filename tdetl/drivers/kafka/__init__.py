"""``kafka:`` — Kafka topics through ``--parser``, offsets committed once the target holds them."""

from __future__ import annotations

import logging


def quiet_client_log() -> None:
    """kafka-python logs connection churn at ERROR (a traceback when a socket closes under its
    network thread at the end of a run); tdetl reports what fails itself, so kafka-python's own log
    shows only at ``-vv``."""
    if not logging.getLogger("tdetl").isEnabledFor(logging.DEBUG):
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
