# Buzzer and LED outputs that show an active alarm
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors


class Indicator:
    """Drives the buzzer and LED pins; the pattern timing lives in the app task."""

    def __init__(self, buzzer, led):
        self.buzzer = buzzer
        self.led = led

    def set(self, buzzer_on, led_on):
        self.buzzer.value(1 if buzzer_on else 0)
        self.led.value(1 if led_on else 0)
