"""The run's checkpoint inside the cluster: an actor every share reports to after each flush (and
waits for), so when a share's worker dies the driver starts it again from where its data became
durable, and can show progress and keep ``--state`` while shares run. (Ray's streaming
generators would carry this without an actor, but the Ray client, ``ray://``, does not run them.)"""

from __future__ import annotations

from typing import Any


class Checkpoints:
    def __init__(self, positions: dict[str, Any]) -> None:
        self.positions = dict(positions)
        self.live: dict[str, dict[str, int]] = {}  # share -> its running attempt's counters at its last flush
        self.carried: dict[str, dict[str, int]] = {}  # share -> what its attempts whose worker died made durable

    def save(self, share: str, positions: dict[str, Any], made: dict[str, int]) -> None:
        self.positions.update(positions)
        self.live[share] = made

    def restart(self, share: str, kept: dict[str, Any]) -> dict[str, Any]:
        """A share's worker died: what it made durable is kept (``kept``: positions its sink recorded
        after the last it reported), the next attempt counts anew."""
        self.positions.update(kept)
        carried = self.carried.setdefault(share, {})
        for k, v in self.live.pop(share, {}).items():
            carried[k] = carried.get(k, 0) + v
        return dict(self.positions)

    def snapshot(self) -> dict[str, Any]:
        return {"positions": dict(self.positions), "live": {s: dict(c) for s, c in self.live.items()},
                "carried": {s: dict(c) for s, c in self.carried.items()}}
