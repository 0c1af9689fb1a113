# Device boot: decide on safe mode before main.py starts the application
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import machine

from drivers import board
from firmware import bootguard

try:
    _cause = machine.reset_cause()
except AttributeError:
    _cause = None

# A watchdog started before a soft reset keeps running, and after a soft reset
# from the raw REPL (mpremote) main.py does not run to feed it.
if _cause == machine.SOFT_RESET:
    board.watchdog(board.REPL_WATCHDOG_MS)

if bootguard.check(board.safe_mode_pin(), _cause, machine.WDT_RESET):
    print("SAFE MODE:", bootguard.safe_reason)
    print("The application will not start; the REPL is free.")
    print("To leave safe mode: remove /safe_mode and /bootguard.json, release the BOOT pin, reset.")
