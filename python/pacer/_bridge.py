"""The asyncio side of the bridge (see python/src/bridge.h): one Bridge per event loop, whose
eventfd the loop watches; a readable fd means a batch of decisions is ready, and drain()
resolves all their futures in one go."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Optional

from . import _pacer

_bridges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _pacer.Bridge]" = (
    weakref.WeakKeyDictionary()
)


# The last loop asked for (weakly) and its Bridge: every Redis decision asks, nearly always from
# the same loop, and the WeakKeyDictionary's lookup makes a weak reference each time.
_last: "tuple[Any, Optional[_pacer.Bridge]]" = (lambda: None, None)


def bridge_for(loop: asyncio.AbstractEventLoop) -> _pacer.Bridge:
    global _last
    last_loop, bridge = _last
    if last_loop() is loop:
        return bridge
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _pacer.Bridge(loop)
        loop.add_reader(bridge.fd, bridge.drain)
        _bridges[loop] = bridge
    _last = (weakref.ref(loop), bridge)
    return bridge
