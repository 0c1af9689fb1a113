# Debounced door, SOS and ignition inputs: IRQs capture edges, a task decides the state
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import time
from micropython import const

from firmware import log

# A missed IRQ edge (noise, two edges inside one debounce window) is caught by this poll.
_POLL_MS = const(1000)

_log = log.get("inputs")


class Inputs:
    """Debounces a set of drivers.digital_inputs.DigitalInput objects and reports state changes.

    The task calls on_change(name, active, edge_ms) once a new level has been
    stable for debounce_ms. edge_ms is the time of the first edge of the change,
    taken in the IRQ handler.
    """

    def __init__(self, flag, inputs, debounce_ms, on_change):
        self._flag = flag
        self.inputs = inputs
        self.debounce_ms = debounce_ms
        self._on_change = on_change
        self.state = {}
        self._first_edge_ms = {}
        for i in inputs:
            self.state[i.name] = i.active()
            self._first_edge_ms[i.name] = None

    def active(self, name):
        return self.state.get(name, False)

    async def run(self):
        while True:
            try:
                await asyncio.wait_for_ms(self._flag.wait(), _POLL_MS)
            except asyncio.TimeoutError:
                pass
            # Remember when each input first moved, then let the contacts settle.
            for i in self.inputs:
                if i.edges and self._first_edge_ms[i.name] is None:
                    self._first_edge_ms[i.name] = i.edge_ms
            await asyncio.sleep_ms(self.debounce_ms)
            self._settle()

    def _settle(self):
        now = time.ticks_ms()
        for i in self.inputs:
            name = i.name
            if i.edges:
                if self._first_edge_ms[name] is None:
                    self._first_edge_ms[name] = i.edge_ms
                if time.ticks_diff(now, i.edge_ms) < self.debounce_ms:
                    # Still bouncing: look again after the next debounce wait.
                    self._flag.set()
                    continue
            edge = self._first_edge_ms[name]
            self._first_edge_ms[name] = None
            i.edges = 0
            level = i.active()
            if level == self.state[name]:
                continue
            self.state[name] = level
            if edge is None:
                # Found by the poll, not by an IRQ: the edge time is unknown.
                edge = now
                _log.warning("%s changed without an IRQ edge", name)
            _log.info("%s %s", name, "active" if level else "inactive")
            try:
                self._on_change(name, level, edge)
            except Exception as e:
                _log.exc(e, "input handler failed for %s", name)
