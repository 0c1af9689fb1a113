# Tests of firmware.inputs with drivers.digital_inputs on simulated pins: debounce and edge times
import asyncio
import time

import world
from drivers import board
from drivers.digital_inputs import DigitalInput
from firmware.inputs import Inputs


def _make(edges, bounce_ms=3, debounce_ms=50):
    w = world.World({"inputs": {"door": edges, "bounce_ms": bounce_ms}})
    world.set_current(w)
    changes = []
    flag = asyncio.ThreadSafeFlag()
    pins = board.input_pins()
    ins = [DigitalInput(n, pins[n], board.ACTIVE_LOW[n], flag) for n in pins]
    inputs = Inputs(flag, ins, debounce_ms, lambda n, a, t: changes.append((n, a, time.ticks_diff(t, w.start_ms))))
    return w, inputs, changes


async def test_door_edges_debounced_with_edge_time():
    w, inputs, changes = _make([[0.3, 1], [0.8, 0]])
    wt = w.start_in_loop()
    it = asyncio.create_task(inputs.run())
    await asyncio.sleep_ms(1200)
    it.cancel()
    wt.cancel()
    assert [(n, a) for n, a, t in changes] == [("door", True), ("door", False)], changes
    # Edge times come from the IRQ handler, not from the end of the debounce wait.
    assert 290 <= changes[0][2] <= 330, changes
    assert 790 <= changes[1][2] <= 830, changes


async def test_glitch_shorter_than_debounce_ignored():
    w, inputs, changes = _make([[0.3, 1], [0.32, 0]], bounce_ms=0)
    wt = w.start_in_loop()
    it = asyncio.create_task(inputs.run())
    await asyncio.sleep_ms(800)
    it.cancel()
    wt.cancel()
    assert changes == [], changes
