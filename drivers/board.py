# Board map: which ESP32 GPIO does what, and the one place that creates hardware objects
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Pin numbers are for an ESP32-WROOM-32 (ESP32_GENERIC). GPIO16/17 are left free
# because WROVER modules use them for PSRAM; GPIO34-39 are input-only and have
# no internal pull-up, so the ignition input needs its own divider or optocoupler.

from micropython import const

ONEWIRE_PIN = const(4)  # DS18B20 data, 4.7 kOhm pull-up to 3.3 V
DHT_PIN = const(13)  # DHT22/DHT11 data, 10 kOhm pull-up to 3.3 V
GNSS_UART_ID = const(2)
GNSS_RX_PIN = const(26)  # ESP32 RX <- receiver TX
GNSS_TX_PIN = const(27)  # ESP32 TX -> receiver RX
DOOR_PIN = const(32)  # cargo-door switch to GND: closed door = low, open door = high
SOS_PIN = const(33)  # SOS push button to GND
IGNITION_PIN = const(35)  # ignition sense, high = ignition on (input only)
BUZZER_PIN = const(25)  # active buzzer through a transistor, high = on
LED_PIN = const(2)  # status LED, high = on
SAFE_MODE_PIN = const(0)  # BOOT button: held low at reset skips the application
# Passenger-seat occupancy switch to GND: occupied = low. GPIO14 has an internal
# pull-up and is not a strapping pin (0, 2, 5, 12 and 15 are), so an occupied
# seat at reset cannot change the boot mode or the flash voltage.
SEAT_PIN = const(14)

# Inputs whose switch pulls the line to GND read 0 when active.
ACTIVE_LOW = {"door": False, "sos": True, "ignition": False, "seat": True}

# A 2 s loop stall at 9600 baud is 1920 bytes; the hardware FIFO adds 128 more.
_GNSS_RXBUF_MIN = const(2048)
# The buffer comes from the ESP-IDF heap that WiFi and TLS also need, and the
# ESP32 UART driver stores its size in 16 bits.
_GNSS_RXBUF_MAX = const(8192)
_STALL_BUDGET_S = const(2)


def gnss_rxbuf(baud):
    """Return a UART receive buffer size for a 2 s loop stall at this baud rate, capped at 8 KiB."""
    need = baud // 10 * _STALL_BUDGET_S
    size = _GNSS_RXBUF_MIN
    while size < need and size < _GNSS_RXBUF_MAX:
        size *= 2
    # NOTE: above 38400 baud the capped buffer covers less than a 2 s stall.
    return size


def onewire_bus():
    import onewire
    import ds18x20
    from machine import Pin

    return ds18x20.DS18X20(onewire.OneWire(Pin(ONEWIRE_PIN)))


def dht_sensor(model):
    import dht
    from machine import Pin

    cls = dht.DHT11 if model == "DHT11" else dht.DHT22
    return cls(Pin(DHT_PIN))


def gnss_uart(baud):
    from machine import UART

    # timeout=0 makes reads return at once, so asyncio's poller decides when to read.
    return UART(
        GNSS_UART_ID,
        baudrate=baud,
        rx=GNSS_RX_PIN,
        tx=GNSS_TX_PIN,
        rxbuf=gnss_rxbuf(baud),
        timeout=0,
    )


def input_pins():
    """Return {name: Pin} for the door, SOS, ignition and passenger-seat inputs."""
    from machine import Pin

    return {
        "door": Pin(DOOR_PIN, Pin.IN, Pin.PULL_UP),
        "sos": Pin(SOS_PIN, Pin.IN, Pin.PULL_UP),
        "ignition": Pin(IGNITION_PIN, Pin.IN),
        "seat": Pin(SEAT_PIN, Pin.IN, Pin.PULL_UP),
    }


def output_pins():
    """Return (buzzer, led) output pins, both off."""
    from machine import Pin

    return Pin(BUZZER_PIN, Pin.OUT, value=0), Pin(LED_PIN, Pin.OUT, value=0)


def safe_mode_pin():
    from machine import Pin

    return Pin(SAFE_MODE_PIN, Pin.IN, Pin.PULL_UP)


def watchdog(timeout_ms):
    from machine import WDT

    return WDT(timeout=timeout_ms)


# An ESP32 watchdog cannot be stopped, only given a new timeout: at the REPL
# (after Ctrl-C or a soft reset) it gets one long enough for an installer's session.
REPL_WATCHDOG_MS = const(86400000)


def set_rtc(year, month, day, weekday, hour, minute, second):
    """Set the chip's RTC (weekday 0 = Monday), so TLS certificate checks see the right date."""
    from machine import RTC

    RTC().datetime((year, month, day, weekday, hour, minute, second, 0))


def unique_id_hex():
    """Return the chip's unique id (the WiFi MAC on the ESP32) as 12 hex digits."""
    import machine

    return "".join("%02x" % b for b in machine.unique_id())


def reset_cause():
    import machine

    return machine.reset_cause()


def reset():
    """Restart the chip, as after a power cycle but with reset_cause() 2 (machine.reset())."""
    import machine

    machine.reset()
