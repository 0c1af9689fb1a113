# Building the terminal's subsystems from its configuration, once at boot
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# firmware.app loads this module for Terminal.__init__ and drops it again
# (firmware/transient.py), so its code is not in the heap while the terminal runs.

import asyncio
import json
import time

from drivers import board
from firmware import log

_log = log.get("app")


def build(term):
    """Make the uplink, sensors, inputs and alarms of term, and take up a trip that was running before a restart."""
    _make_uplink(term)
    _make_sensors(term)
    _make_inputs(term)
    _make_alarms(term)
    term.packer.set_schema(term.probes.names, [a.key for a in term.alarms.all])
    _restore_trip(term)
    for kind in ("config/set", "config/get", "cmd"):
        term.uplink.subscribe(kind)
    term.uplink.on_connect = term._on_connect
    _boot_message_result(term)

    from drivers.indicator import Indicator

    term.indicator = Indicator(*board.output_pins())


def _boot_message_result(term):
    # The reply and records of a config/set handled at the start of this boot.
    from firmware import remoteboot
    from firmware.transient import unload

    try:
        remoteboot.take(term)
    finally:
        unload("firmware.remoteboot")


def _make_uplink(term):
    from drivers import wlan
    from firmware.app import FW_VERSION
    from firmware.uplink import Uplink

    cfg = term.cfg
    term.link = wlan.create(cfg)
    # Without GNSS the time of a record is never learnt, so records do not wait for it.
    wait_s = None if cfg["gnss"]["enabled"] else 0
    term.uplink = Uplink(cfg, term.device_id, term.store, link=term.link, boot_id=term.boot_id,
                         fw=FW_VERSION, time_wait_s=wait_s, on_message=term._on_message,
                         rx_spill=term.rx_spill)


def _make_sensors(term):
    cfg = term.cfg
    fault_count = cfg["alarm"]["fault_count"]

    from drivers.ds18b20 import DS18B20Bus
    from firmware.probes import Probes

    term.probes = Probes(DS18B20Bus(board.onewire_bus()), cfg["probes"], fault_count)

    term.humidity = None
    if cfg["dht"]["enabled"]:
        from drivers.dht_sensor import DHTSensor
        from firmware.humidity import Humidity

        model = cfg["dht"]["model"]
        sensor = DHTSensor(board.dht_sensor(model), model)
        term.humidity = Humidity(sensor, model, cfg["dht"]["interval_s"], fault_count)

    term.gnss = None
    if cfg["gnss"]["enabled"]:
        from firmware.gnss import GNSS

        term.gnss = GNSS(board.gnss_uart(cfg["gnss"]["baud"]), on_fix=term._on_fix)


def _make_inputs(term):
    from drivers.digital_inputs import DigitalInput
    from firmware.inputs import Inputs

    flag = asyncio.ThreadSafeFlag()
    pins = board.input_pins()
    ins = [DigitalInput(name, pins[name], board.ACTIVE_LOW[name], flag) for name in pins]
    term.inputs = Inputs(flag, ins, term.cfg["inputs"]["debounce_ms"], term._on_input)


def _make_alarms(term):
    from firmware.alarms import Alarms

    a = term.alarms = Alarms(term.cfg, term.humidity is not None, term._on_alarm)
    a.on_zone = term._on_zone
    a.ignition = term.inputs.active("ignition")
    a.seat_occupied = term.inputs.active("seat")


def _restore_trip(term):
    from firmware.alarms import TRIP_TYPES
    from firmware.app import TRIP_PATH

    term._trip_saved_ms = time.ticks_ms()
    try:
        with open(TRIP_PATH) as f:
            t = json.load(f)
        kind = TRIP_TYPES.index(t["type"])
        now = time.ticks_ms()
        term.alarms.trip_start(kind, t["id"], now, t["early_left_s"] * 1000)
        for name in t["out_s"]:
            ch = term.alarms.channels.get(name)
            if ch is not None:
                ch.out_ms = t["out_s"][name] * 1000
        term.packer.set_trip(t["id"])
        _log.info("trip %s (%s) goes on after the restart", t["id"], t["type"])
    except OSError:
        pass
    except (ValueError, KeyError, TypeError) as e:
        _log.error("%s is unreadable (%r); no trip is running", TRIP_PATH, e)
