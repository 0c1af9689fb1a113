# Levelled logger with a subsystem prefix, to the console and optionally a size-capped file
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   from firmware import log
#   _log = log.get("gnss")
#   _log.warning("checksum mismatch on %s", kind)
#
# A line reads "12.345 [gnss] W: checksum mismatch on RMC", where 12.345 is
# the time in seconds since the logger was imported (about the time since boot).
# Only warnings and errors go to the file: every file write is a flash commit
# on LittleFS, so info lines stay on the console. The console is quiet by
# default (warnings and errors only). When a log file is configured, lines go
# there too; once it passes max_bytes it is renamed to <file>.1 (one old file
# is kept), so the log never takes more than twice max_bytes of flash.

import sys
import time

_last_ms = time.ticks_ms()
_total_ms = 0


def _elapsed_ms():
    # Accumulated per line so the count survives the ticks_ms() wrap.
    global _last_ms, _total_ms
    now = time.ticks_ms()
    _total_ms += time.ticks_diff(now, _last_ms)
    _last_ms = now
    return _total_ms

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40

_LETTERS = {DEBUG: "D", INFO: "I", WARNING: "W", ERROR: "E"}
_NAMES = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}

level = WARNING
# False keeps lines off the console (they still go to the file); tests use it.
console = True
_file_path = None
_file_max_bytes = 16384
_file_size = 0
_loggers = {}


def level_from_name(name):
    """Return the numeric level for "debug", "info", "warning" or "error"."""
    try:
        return _NAMES[name]
    except KeyError:
        raise ValueError("unknown log level %r" % name)


def setup(level_name="warning", path=None, max_bytes=16384):
    """Set the console level and the optional log file."""
    global level, _file_path, _file_max_bytes, _file_size
    level = level_from_name(level_name)
    _file_path = path or None
    _file_max_bytes = max_bytes
    _file_size = 0
    if _file_path:
        try:
            import os

            _file_size = os.stat(_file_path)[6]
        except OSError:
            _file_size = 0


def _rotate():
    global _file_size
    import os

    try:
        os.remove(_file_path + ".1")
    except OSError:
        pass
    try:
        os.rename(_file_path, _file_path + ".1")
    except OSError:
        pass
    _file_size = 0


def write_file(text):
    """Append text to the log file, rotating it first when it would grow past the cap."""
    global _file_path, _file_size
    if not _file_path:
        return
    try:
        if _file_size + len(text) > _file_max_bytes:
            _rotate()
        with open(_file_path, "a") as f:
            f.write(text)
        _file_size += len(text)
    except OSError as e:
        # A full or failing filesystem must not take the application down:
        # stop file logging and report it once on the console.
        _file_path = None
        print("[log] E: log file disabled:", e)


class Logger:
    def __init__(self, prefix):
        self.prefix = prefix

    def _emit(self, lvl, msg, args):
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = "%s %r" % (msg, args)
        ms = _elapsed_ms()
        line = "%d.%03d [%s] %s: %s" % (ms // 1000, ms % 1000, self.prefix, _LETTERS[lvl], msg)
        if console:
            print(line)
        if _file_path and lvl >= WARNING:
            write_file(line + "\n")

    def enabled(self, lvl):
        return lvl >= level

    def debug(self, msg, *args):
        if DEBUG >= level:
            self._emit(DEBUG, msg, args)

    def info(self, msg, *args):
        if INFO >= level:
            self._emit(INFO, msg, args)

    def warning(self, msg, *args):
        if WARNING >= level:
            self._emit(WARNING, msg, args)

    def error(self, msg, *args):
        if ERROR >= level:
            self._emit(ERROR, msg, args)

    def exc(self, e, msg, *args):
        """Log an error with the exception's traceback (console and file)."""
        try:
            self._emit(ERROR, msg, args)
            if console:
                sys.print_exception(e)
            if _file_path:
                import io

                buf = io.StringIO()
                sys.print_exception(e, buf)
                write_file(buf.getvalue())
        except MemoryError:
            # Often called while handling a MemoryError: losing the traceback
            # is better than raising again from the handler.
            print("log: out of memory while logging an error")


def get(prefix):
    """Return the logger for one subsystem, created once."""
    lg = _loggers.get(prefix)
    if lg is None:
        lg = Logger(prefix)
        _loggers[prefix] = lg
    return lg
