# The terminal application: wires sensors, GNSS, inputs, alarms and the uplink into one asyncio loop
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import asyncio
import gc
import json
import time
from micropython import const

from drivers import board
from firmware import bootguard, log
from firmware.transient import unload
from firmware import alarms as _alarms
from firmware.clock import Clock, Uptime, civil_from_unix
from firmware.packed import ALARM, EVENT, TELEMETRY, Packer, clock_offset_ms
from firmware.store import Store, write_atomic

FW_VERSION = "0.2.0"
BOOT_COUNT_PATH = "/bootcount"
TRIP_PATH = "/trip.json"

_TICK_MS = const(1000)
# The watchdog is fed only while the sampling tick has run within this window.
_STALL_MS = const(10000)
# How long a due telemetry record waits for the probe cycle in progress.
_SAMPLE_WAIT_MS = const(5000)
_CLOCK_REBASE_MS = const(3600000)
_TRIP_SAVE_MS = const(60000)  # a running trip's state is saved this often (and at start and end)
_INBOX_MAX = const(4)
_CONFIG_RETRY_MS = const(10000)  # a retained document that did not fit is tried again this often
# A remote message that ran out of memory is handled again this much later, at
# most this many times, before its out-of-memory reply goes out. Right after a
# connect the heap is busiest, and a retained set arrives exactly then.
_OOM_RETRY_MS = const(3000)
_OOM_RETRIES = const(3)
# A due restart waits at most this long for messages still to be handled: the
# retries of one message take 9 s.
_RESET_HOLD_MS = const(20000)
_INDICATE_MS = const(200)
PENDING_SET_PATH = "/remote_pending.bin"  # a config/set left for the next start (firmware/remoteboot.py)
_COMPACT = (",", ":")  # JSON separators of the replies built here, as firmware.remote writes them

_log = log.get("app")

# True once the hardware watchdog runs; main.py then lengthens it at the REPL.
watchdog_started = False


def next_boot_id(path=BOOT_COUNT_PATH):
    """Return this boot's number (1, 2, ...), persisted on flash so records stay unique across reboots."""
    n = 0
    try:
        with open(path) as f:
            n = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pass
    n += 1
    try:
        with open(path, "w") as f:
            f.write(str(n))
    except OSError as e:
        _log.warning("cannot store boot count in %s: %s", path, e)
    return n


class Terminal:
    def __init__(self, cfg, config_errors=(), config_source="file"):
        self.cfg = cfg
        self.config_errors = config_errors
        self.config_source = config_source
        self.device_id = cfg["device_id"] or "esp32-" + board.unique_id_hex()
        self.boot_id = next_boot_id()
        self.clock = Clock()
        self.uptime = Uptime()
        self.store = Store(cfg)
        self.packer = Packer(self.store.names, self.boot_id, self.uptime, self.clock)
        self._alive_ms = time.ticks_ms()
        self._cycle_done = asyncio.Event()
        self._alarm_changed = asyncio.Event()
        self._inbox = []
        self._inbox_ready = asyncio.Event()
        self._retry = None  # (kind, payload, retained, size, tries) of a message that ran out of memory
        self._retry_ms = 0
        self._out_of_memory = False
        self._remote_events = ()  # (name, extra) of the events that the message being handled records
        self.remote = None
        self._auth_state = (0, None)
        self._cfg_hash = None  # hash of self.cfg once firmware.remote computed it
        self.config_changed = False  # set by firmware.apply, so that the retained document is published again
        self._config_retry_ms = 0
        self.reset_at = None

        # The construction code runs once, so it is loaded for this call only.
        from firmware import startup

        try:
            startup.build(self)
        finally:
            unload("firmware.startup")

    # Callbacks from the subsystems

    def _on_fix(self, parser):
        self.alarms.position(self.gnss, time.ticks_ms())
        if self.clock.offer_fix(parser):
            now = time.ticks_ms()
            # Records of this boot get their time from this offset, also after a reboot.
            self.store.clocks.set(self.boot_id, clock_offset_ms(self.clock, self.uptime, now))
            # TLS checks certificate dates against the RTC, which restarts at
            # 2000-01-01 after a power cut.
            try:
                board.set_rtc(*civil_from_unix(self.clock.unix_ms_at(time.ticks_ms()) // 1000))
            except Exception as e:
                _log.warning("cannot set the RTC: %r", e)

    def _on_probe_cycle(self):
        p = self.probes
        # The cycle's start, not its end: the conversion and reads take a varying
        # time, and a delay of N samples must hold after exactly N periods.
        now = p.cycle_ms
        for i in range(len(p.names)):
            self.alarms.sample(p.names[i], p.value_mc[i], p.fails[i], p.state[i], now)
        self._cycle_done.set()

    def _on_humidity(self):
        h = self.humidity
        now = time.ticks_ms()
        self.alarms.sample("dht", h.temp_mc, h.fails, h.state, now)
        self.alarms.sample("rh", h.rh_mrh, h.fails, h.state, now)

    def _on_input(self, name, active, edge_ms):
        if name == "door":
            self.alarms.door_changed(active, edge_ms)
            self.record_event("door_open" if active else "door_closed", edge_ms)
        elif name == "sos":
            self.record_event("sos_pressed" if active else "sos_released", edge_ms)
            self.alarms.sos_changed(active, edge_ms)
        elif name == "ignition":
            self.record_event("ignition_on" if active else "ignition_off", edge_ms)
            self.alarms.ignition_changed(active, edge_ms)
        elif name == "seat":
            self.record_event("seat_occupied" if active else "seat_vacated", edge_ms)
            self.alarms.seat_changed(active, edge_ms)

    def _on_alarm(self, a, change, now_ms):
        self.store.put(ALARM, self.packer.alarm(now_ms, a, change, self.gnss, self.inputs, self.alarms))
        self._alarm_changed.set()

    def _on_zone(self, name, entered, now_ms):
        self.record_event("zone_enter" if entered else "zone_exit", now_ms, {"zone": name})

    def record_event(self, name, now_ms, extra=None):
        self.store.put(EVENT, self.packer.event(now_ms, name, self.gnss, self.inputs, extra))

    # Trips

    def save_trip(self, now):
        self._trip_saved_ms = now
        a = self.alarms
        try:
            if not a.trip:
                import os

                try:
                    os.remove(TRIP_PATH)
                except OSError:
                    pass  # no trip file: nothing to remove
                return
            out = {}
            for name in a.channels:
                out[name] = a.channels[name].out_ms // 1000
            text = json.dumps({"id": a.trip_id, "type": _alarms.TRIP_TYPES[a.trip],
                               "early_left_s": a.early_left_ms(now) // 1000, "out_s": out})
            write_atomic(TRIP_PATH, text)
        except OSError as e:
            _log.warning("cannot save the trip in %s: %s", TRIP_PATH, e)

    # Remote configuration and commands (firmware/remote.py, docs/remote.md)

    def rx_spill(self, topic, size, retained):
        """Return a file for a config/set message that finds no room in the heap, or None to skip it."""
        # Called by the MQTT reader. The file becomes the set saved for the next
        # start (firmware/remoteboot.py) in _on_message, once it is whole. A
        # retained set is skipped: it arrives again at every connect, and would
        # restart the terminal each time.
        if retained or topic != self.uplink.topic("config/set") or self.reset_at is not None:
            return None
        import os

        try:
            os.stat(PENDING_SET_PATH)
            return None  # a saved set is waiting for the restart already
        except OSError:
            pass
        try:
            f = open(PENDING_SET_PATH + ".part", "wb")
            f.write(b"0\n")
            return f
        except OSError as e:
            _log.error("cannot save a %d-byte config/set message: %s", size, e)
            return None

    def _on_message(self, topic, payload, retained):
        # Called by the MQTT reader: queue the message for _remote_task, which may write flash.
        prefix = self.uplink.topic("")
        if not topic.startswith(prefix):
            return
        if payload is None and self.uplink.rx_spilled:
            import os

            try:
                os.rename(PENDING_SET_PATH + ".part", PENDING_SET_PATH)
                _log.error("no memory for a %d-byte config/set message; saved it, restarting to handle it at boot",
                           self.uplink.rx_size)
                self.reset_at = time.ticks_add(time.ticks_ms(), _OOM_RETRY_MS)
                return
            except OSError as e:
                _log.error("cannot save a %d-byte config/set message: %s", self.uplink.rx_size, e)
        kind = topic[len(prefix):].decode()
        if len(self._inbox) >= _INBOX_MAX:
            _log.warning("remote inbox full; dropped a message on %s", kind)
            return
        self._inbox.append((kind, payload, retained, self.uplink.rx_size, 0))
        self._inbox_ready.set()

    def _remote_handler(self):
        # firmware.remote and firmware.signing take about 16 KB of heap, so they
        # are loaded for each message and dropped again (_drop_remote).
        gc.collect()
        from firmware.remote import Remote

        commands = {}
        for name in _COMMANDS:
            commands[name] = lambda args, name=name: self._control(name, args)
        # The stored patch (config.json) is read only when a set needs it.
        r = self.remote = Remote(self.cfg, None, self.cfg["remote"]["key"],
                                 lambda cfg, changed: self._control("apply", (cfg, changed)), commands,
                                 cfg_hash=self._cfg_hash)
        # The rejection count and log limit outlive the module.
        r.auth_failures, r._auth_logged_ms = self._auth_state
        r.validate_later = True
        r.cfg_from_file = self.config_source == "file"
        return r

    def _validate_set(self, pending):
        # firmware.remote and firmware.checks take about 19 KB together on the
        # 64-bit unix port, which does not fit beside zones and a route. So the remote
        # module is dropped while the checks run and loaded again to finish.
        self._drop_remote()
        gc.collect()
        try:
            from firmware import config

            pending[3].extend(config.validate(pending[2], pending[6]))
        except MemoryError:
            self._out_of_memory = True
            pending[3].append(("message", "out of memory validating the configuration; send it again"))
        config = None
        unload("firmware.config")
        gc.collect()
        if not pending[3]:
            for key in pending[6]:
                if key == "zones" or key.startswith("route"):
                    # Built now, before firmware.remote is loaded again, so
                    # the shapes' construction code and the remote code are
                    # never in the heap together.
                    try:
                        self.alarms.build_zones(pending[2])
                    except MemoryError:
                        self._out_of_memory = True
                        pending[3].append(("message", "out of memory building the zones and route; send it again"))
                    break
        self._unload_geo()
        gc.collect()
        try:
            r = self._remote_handler()
        except MemoryError:
            # Nothing is in force yet. The reply is built here, because the code
            # that builds replies is what did not fit.
            ident = pending[0]
            pending = None
            self._out_of_memory = True
            _log.error("out of memory loading the remote code; config/set (id %r) not applied", ident)
            return None, json.dumps({"id": ident, "ok": False, "topic": "config/set", "version": self.cfg["version"],
                                     "hash": self._cfg_hash, "errors": [{"key": "message", "reason":
                                     "out of memory applying the configuration; nothing changed, send it again"}]},
                                    separators=_COMPACT)
        return r, r.finish_set(pending)

    def _record_remote_events(self):
        events = self._remote_events
        self._remote_events = ()
        for name, extra in events:
            try:
                self.record_event(name, time.ticks_ms(), extra)
            except MemoryError:
                # The reply matters more than the record of it, and a retry
                # would do the change again: the event is dropped.
                _log.error("out of memory recording the %s event; the reply is still sent", name)

    def _control(self, name, args):
        # firmware.control is loaded only when a command runs, firmware.apply when a change is applied.
        if name == "apply":
            try:
                from firmware import apply

                return apply.apply_config(self, args[0], args[1])
            except Exception:
                # config.json has the change, and firmware.remoteset replies
                # "restart": the restart puts it in force. Until then a get
                # returns it, with the version and hash of that reply.
                self.reset_at = time.ticks_add(time.ticks_ms(), _OOM_RETRY_MS)
                self.cfg = args[0]
                self.config_source = "file"
                raise
        from firmware import control

        return control.COMMANDS[name](self, args)

    def _drop_remote(self):
        r = self.remote
        if r is not None:
            self._auth_state = (r.auth_failures, r._auth_logged_ms)
            self._cfg_hash = r.hash
        self.remote = None
        # Shapes built for a change that was not applied (firmware.alarms.build_zones).
        self.alarms._built = None
        # Every module that a message may load, including those that a
        # MemoryError can leave loaded part way through a step.
        for name in _MESSAGE_MODULES:
            unload(name)
        self._unload_geo()
        # The caller collects (firmware/transient.py).

    def _unload_geo(self):
        a = self.alarms
        if not a.zones and a.corridor is None and a._built is None:
            # Loaded to validate zones or a route that are not in force. With
            # shapes in force it stays: a second import would load a second copy.
            unload("firmware.geo")

    def _on_connect(self):
        self._publish_config()

    def _publish_config(self):
        # The retained document, after each connect and each applied change. When
        # memory is short the change is still in force, and _tick tries again.
        self.config_changed = False
        try:
            self.uplink.send("config", self._remote_handler().config_text(), True)
        except MemoryError:
            self.config_changed = True
            self._config_retry_ms = time.ticks_add(time.ticks_ms(), _CONFIG_RETRY_MS)
            _log.warning("out of memory publishing the configuration; trying again in %d s", _CONFIG_RETRY_MS // 1000)
        except Exception as e:
            _log.exc(e, "cannot publish the configuration")
        finally:
            self._drop_remote()
            gc.collect()

    async def _remote_task(self):
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self._inbox:
                self._handle_next()
                await asyncio.sleep_ms(0)

    def _handle_next(self):
        # A plain call, so that no value of a message stays in _remote_task's
        # frame, which is on the heap and scanned whole (see _start).
        self._handle_message(self._inbox.pop(0))
        if self.config_changed:
            # Published with only firmware.remote loaded, after the change is done.
            self._publish_config()

    def _handle_message(self, item):
        kind, payload, retained, size, tries = item
        item = None
        # A message that may be handled again keeps its payload.
        keep = payload if tries < _OOM_RETRIES and self._retry is None else None
        # A set's last attempt is saved first: when it runs out of memory too,
        # the terminal restarts and handles it at boot (firmware/remoteboot.py).
        saved = tries >= _OOM_RETRIES and kind == "config/set" and payload and self._save_set(payload, retained)
        self._out_of_memory = False
        r = reply = None
        sent = False
        try:
            reply = self._start_message(kind, payload, retained, size, tries > 0)
            payload = None
            if isinstance(reply, tuple):
                # A config/set waiting for validation (see _validate_set).
                self._record_remote_events()
                r, reply = self._validate_set(reply)
                if r is not None:
                    self._remote_events = r.events
                    self._out_of_memory = self._out_of_memory or r.out_of_memory
                r = None
            if keep is not None and self._out_of_memory:
                self._retry_later(kind, keep, retained, size, tries)
                reply = None
            elif saved and self._out_of_memory:
                reply = None  # handled at boot, which sends the reply
            else:
                self._record_remote_events()
            if reply is not None:
                self.uplink.send("reply", reply)
                sent = True
        except Exception as e:
            _log.exc(e, "remote message on %s failed", kind)
            if isinstance(e, MemoryError):
                self._out_of_memory = True
                if keep is not None:
                    self._retry_later(kind, keep, retained, size, tries)
                    sent = True  # the next attempt sends the reply
        finally:
            # reply may still contain a half-done set with its new configuration.
            # Dropping it frees that heap for the next messages.
            final = keep is None and self._out_of_memory and not sent
            ident = self.remote._ident if final and self.remote is not None else None
            payload = r = reply = keep = None
            self._remote_events = ()
            self._drop_remote()
            gc.collect()
        if final and saved:
            _log.error("out of memory handling a message on config/set; restarting to handle it at boot")
            self.reset_at = time.ticks_add(time.ticks_ms(), _OOM_RETRY_MS)
        elif final:
            self._reply_out_of_memory(kind, ident)
        elif saved:
            import os

            try:
                os.remove(PENDING_SET_PATH)
            except OSError:
                pass  # removed already

    def _reply_out_of_memory(self, kind, ident):
        # The last attempt of a message ran out of memory where no reply could
        # be built, so this one is built without firmware.remote. It promises
        # what the reply of firmware.remote would: nothing changed.
        _log.error("out of memory handling a message on %s; sent an error reply", kind)
        out = {"id": ident, "ok": False, "topic": kind, "errors": [
            {"key": "message", "reason": "out of memory handling the message; nothing changed, send it again"}]}
        if kind != "cmd":
            out["version"] = self.cfg["version"]
            out["hash"] = self._cfg_hash
        try:
            self.uplink.send("reply", json.dumps(out, separators=_COMPACT))
        except MemoryError:
            _log.error("out of memory replying to a message on %s", kind)

    def _start_message(self, kind, payload, retained, size, again):
        # The first step of a message, in a call of its own. The collector scans
        # stacks conservatively (firmware/transient.py), so the Remote object is
        # kept out of _handle_message's frame. Once this returns, only
        # self.remote refers to it, and _validate_set can drop it with its module.
        r = self._remote_handler()
        reply = r.handle(kind, payload, retained, size, again)
        self._remote_events = r.events
        self._out_of_memory = r.out_of_memory
        return reply

    def _save_set(self, payload, retained):
        try:
            with open(PENDING_SET_PATH, "wb") as f:
                f.write(b"1\n" if retained else b"0\n")
                f.write(payload)
            return True
        except (OSError, MemoryError) as e:
            _log.error("cannot save the config/set message in %s: %r", PENDING_SET_PATH, e)
            return False

    def _retry_later(self, kind, payload, retained, size, tries):
        _log.warning("out of memory handling a message on %s; trying again in %d s (%d of %d)",
                     kind, _OOM_RETRY_MS // 1000, tries + 1, _OOM_RETRIES)
        self._retry = (kind, payload, retained, size, tries + 1)
        self._retry_ms = time.ticks_add(time.ticks_ms(), _OOM_RETRY_MS)

    def _reset(self):
        self.store.flush()
        self.store.save_positions()
        self.save_trip(time.ticks_ms())
        board.reset()

    # Tasks

    async def _tick(self):
        last_rebase = time.ticks_ms()
        healthy = False
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            now = time.ticks_ms()
            self._alive_ms = now
            up_ms = self.uptime.ms(now)
            if self.gnss is not None and not self.gnss.has_fix():
                self.alarms.position(self.gnss, now)
            self.alarms.tick(now, self.gnss)
            if self.alarms.trip and time.ticks_diff(now, self._trip_saved_ms) >= _TRIP_SAVE_MS:
                self.save_trip(now)
            if self.reset_at is not None and time.ticks_diff(now, self.reset_at) >= 0:
                # Messages that arrived before the restart are handled first, for
                # up to _RESET_HOLD_MS, so that each gets its reply. A set whose
                # last attempt runs out of memory is saved for the next start.
                waiting = self._inbox or self._retry is not None
                if not waiting or time.ticks_diff(now, self.reset_at) >= _RESET_HOLD_MS:
                    self._reset()
            if self._retry is not None and time.ticks_diff(now, self._retry_ms) >= 0:
                self._inbox.append(self._retry)
                self._retry = None
                self._inbox_ready.set()
            if self.config_changed and not self._inbox and time.ticks_diff(now, self._config_retry_ms) >= 0:
                self._publish_config()
            if time.ticks_diff(now, last_rebase) >= _CLOCK_REBASE_MS:
                self.clock.rebase(now)
                last_rebase = now
            if not healthy and up_ms >= bootguard.HEALTHY_S * 1000:
                healthy = True
                bootguard.mark_healthy()

    async def _telemetry(self):
        # The first record goes out after the first probe cycle, then one per interval.
        due = time.ticks_add(time.ticks_ms(), -self.cfg["interval_s"] * 1000)
        while True:
            # Faster logging while an alarm is active or a limit is crossed.
            active = self.alarms.any_active() or self.alarms.excursion()
            interval_ms = (self.cfg["alarm_interval_s"] if active else self.cfg["interval_s"]) * 1000
            wait = time.ticks_diff(time.ticks_add(due, interval_ms), time.ticks_ms())
            if wait > 0:
                self._alarm_changed.clear()
                try:
                    # A raised alarm switches to the shorter interval at once.
                    await asyncio.wait_for_ms(self._alarm_changed.wait(), wait)
                    continue
                except asyncio.TimeoutError:
                    pass
            due = time.ticks_add(due, interval_ms)
            if time.ticks_diff(time.ticks_ms(), due) > interval_ms:
                # Far behind (a long stall): restart the schedule from now.
                due = time.ticks_ms()
            # Wait for the probe cycle in progress so the record carries fresh values.
            self._cycle_done.clear()
            try:
                await asyncio.wait_for_ms(self._cycle_done.wait(), _SAMPLE_WAIT_MS)
            except asyncio.TimeoutError:
                _log.warning("no probe cycle within %d ms; sending the last values", _SAMPLE_WAIT_MS)
            self.publish_telemetry()

    def publish_telemetry(self):
        packed = self.packer.telemetry(time.ticks_ms(), self.probes, self.humidity, self.gnss, self.inputs, self.alarms)
        self.store.put(TELEMETRY, packed)
        # A collection per record keeps fragmentation down (MicroPython's advice
        # for long-running programs) and makes the logged free heap meaningful.
        gc.collect()
        _log.info("telemetry seq %d stored (%d waiting, %d dropped, %d bytes heap free)",
                  self.packer.seq, self.store.depth(), self.store.dropped(), gc.mem_free())

    async def _indicate(self):
        # Patterns by severity: firmware.alarms.indication().
        phase = 0
        a = self.alarms
        while True:
            sev = a.max_severity()
            buzzer, led = _alarms.indication(sev, a.max_severity(False) == sev, phase)
            self.indicator.set(buzzer, led)
            phase = (phase + 1) % _alarms.INDICATE_PHASES
            await asyncio.sleep_ms(_INDICATE_MS)

    async def _watchdog(self, timeout_s):
        global watchdog_started
        wdt = board.watchdog(timeout_s * 1000)
        watchdog_started = True
        while True:
            if time.ticks_diff(time.ticks_ms(), self._alive_ms) < _STALL_MS:
                wdt.feed()
            await asyncio.sleep_ms(1000)

    def _boot_event(self):
        extra = {"fw": FW_VERSION, "reset_cause": board.reset_cause(), "config": self.config_source}
        if self.config_errors:
            extra["config_errors"] = ["%s: %s" % e for e in self.config_errors]
        self.record_event("boot", time.ticks_ms(), extra)

    async def run(self):
        loop = asyncio.get_event_loop()
        loop.set_exception_handler(_task_exception)
        _log.info("device %s boot %d firmware %s", self.device_id, self.boot_id, FW_VERSION)
        self._boot_event()
        tasks = [
            self.uplink.run(),
            self.store.run(),
            self.inputs.run(),
            self.probes.run(self.cfg["sample_s"], self._on_probe_cycle),
            self._tick(),
            self._telemetry(),
            self._indicate(),
            self._remote_task(),
        ]
        if self.humidity is not None:
            tasks.append(self.humidity.run(self._on_humidity))
        if self.gnss is not None:
            tasks.append(self.gnss.run())
        if self.cfg["watchdog_s"]:
            tasks.append(self._watchdog(self.cfg["watchdog_s"]))
        try:
            await asyncio.gather(*tasks)
        finally:
            # On a crash or Ctrl-C, the records still in RAM go to flash first.
            self.store.flush()
            self.store.save_positions()


_COMMANDS = ("trip_start", "trip_end", "ack", "flush", "reboot", "selftest")
_MESSAGE_MODULES = ("firmware.control", "firmware.apply", "firmware.remoteset", "firmware.remotecmd",
                    "firmware.remote", "firmware.signing", "firmware.config", "firmware.checks",
                    "firmware.listchecks", "firmware.geobuild", "firmware.defaults")


def _task_exception(loop, context):
    # A task died: log the traceback (to flash when a log file is set). The
    # watchdog catches the case where this stops sampling.
    e = context.get("exception")
    if e is not None:
        _log.exc(e, "task failed: %s", context.get("message", ""))
    else:
        _log.error("task failed: %s", context.get("message", ""))


def _boot_message():
    # A config/set left by the last run (firmware/remoteboot.py), handled while
    # nothing else is in the heap. _start collects after this returns.
    from firmware import remoteboot

    try:
        remoteboot.handle()
    finally:
        remoteboot = None
        unload("firmware.remoteboot")


def _start():
    # Everything before the loop runs in this plain function. A coroutine's
    # frame stays on the heap as long as the coroutine runs, and the collector
    # scans all of it, also the stack slots of values already used. When this
    # code was in main(), its frame kept firmware.config alive (2.3 KB, seen with
    # tools/heapmap.py), and it could keep the boot configuration after a
    # remote change replaced it.
    #
    # The modules that stay loaded are imported first, so that their code is
    # allocated before boot's short-lived objects and not between them. The
    # modules of optional hardware are loaded later, with the configuration.
    _boot_message()
    gc.collect()
    from drivers import digital_inputs, ds18b20, indicator, wlan  # noqa: F401
    from firmware import inputs, mqtt, probes, uplink  # noqa: F401

    digital_inputs = ds18b20 = indicator = wlan = inputs = mqtt = probes = uplink = None
    gc.collect()
    # firmware.config is loaded again only while a remote message is handled.
    from firmware import config

    try:
        cfg, errors, source = config.load()
    finally:
        config = None
        unload("firmware.config")
    lg = cfg["log"]
    log.setup(lg["level"], lg["file"] or None, lg["file_max_bytes"])
    for key, reason in errors:
        _log.error("config %s: %s", key, reason)
    if errors:
        _log.error("config.json rejected; running on the %s configuration", source)
    return Terminal(cfg, errors, source)


async def main():
    await _start().run()
