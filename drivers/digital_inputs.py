# Digital inputs with edge capture in the pin IRQ handler (door, SOS, ignition)
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import time
from machine import Pin


class DigitalInput:
    """One input pin: the IRQ handler stores the edge time and signals a flag; nothing else."""

    def __init__(self, name, pin, active_low, flag):
        self.name = name
        self.pin = pin
        self.active_low = active_low
        # ticks_ms() of the latest edge; written only by the IRQ handler.
        self.edge_ms = time.ticks_ms()
        self.edges = 0
        self._flag = flag
        pin.irq(handler=self._irq, trigger=Pin.IRQ_RISING | Pin.IRQ_FALLING)

    def _irq(self, pin):
        # Runs as a soft IRQ: no allocation, no I/O, just note the time and wake the task.
        # On the ESP32 a soft IRQ is only scheduled, so the time can lag the edge by
        # the longest blocking call (a DHT read, about 270 ms).
        self.edge_ms = time.ticks_ms()
        self.edges += 1
        self._flag.set()

    def active(self):
        """Return True when the input is active now (door open, SOS pressed, ignition on)."""
        return self.pin.value() == (0 if self.active_low else 1)
