# Code loaded for one task and dropped again, so its bytecode is in the heap only while it runs
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Usage:
#   from firmware import checks     # loaded here
#   try:
#       checks.validate(cfg)
#   finally:
#       unload("firmware.checks")   # freed at the next collection
#
# Collect in the caller of the function that unloads, not in that function
# itself: the collector scans the C stack conservatively, and the dead frames
# of unload() calls just made still point to the modules. Measured on the unix
# port: a collection right after the unloads kept about 10 KB of a config/set's
# code alive, one from the caller freed it.
#
# Interned names (qstrs) of an unloaded module stay, so loading it again costs
# only its bytecode and objects.


def unload(name):
    """Drop a module loaded for one task (firmware.checks, firmware.remote) so gc frees its bytecode."""
    import sys

    import firmware

    sys.modules.pop(name, None)
    attr = name.split(".")[-1]
    if attr in firmware.__dict__:
        delattr(firmware, attr)
