"""The asyncio side of the bridge (see python/src/bridge.h): one Bridge per event loop, whose
eventfd the loop watches; a readable fd means a batch of decisions is ready, and drain()
resolves all their futures in one go."""

from __future__ import annotations

import asyncio
import weakref

from . import _pacer

_bridges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _pacer.Bridge]" = (
    weakref.WeakKeyDictionary()
)


def bridge_for(loop: asyncio.AbstractEventLoop) -> _pacer.Bridge:
    """The Bridge of `loop`, made on first use. Decisions ask `_pacer.loop_future()`, which
    keeps the last loop's Bridge itself and calls this only for a loop it has not seen last."""
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _pacer.Bridge(loop)
        loop.add_reader(bridge.fd, bridge.drain)
        _bridges[loop] = bridge
    return bridge
