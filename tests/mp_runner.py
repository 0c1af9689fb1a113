# Unit-test runner for firmware modules under the MicroPython unix port
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run from the repository root:  micropython tests/mp_runner.py [NAME_PART ...]
# Every tests/mp/test_*.py module is imported and each of its test_* functions
# is called; a function that returns a coroutine is run with asyncio.run().
# Simulated hardware (tools/sim: machine, onewire, ds18x20, dht) comes first on
# sys.path, as it does in the virtual terminal. The last line is
# "N passed, N failed" and the exit status is 1 when anything failed.

import gc
import os
import sys

sys.path[:] = ["tools/sim", "", "tests/mp", ".frozen"]

import asyncio


def _is_coroutine(obj):
    return type(obj).__name__ in ("generator", "coroutine")


def main(filters):
    passed = 0
    failed = []
    for fname in sorted(os.listdir("tests/mp")):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        if filters and not any(f.split(".")[0] in modname for f in filters):
            continue
        try:
            mod = __import__(modname)
        except Exception as e:
            print("FAIL %s (import)" % modname)
            sys.print_exception(e)
            failed.append(modname)
            continue
        for name in sorted(dir(mod)):
            if not name.startswith("test_"):
                continue
            full = "%s.%s" % (modname, name)
            if filters and not any(f in full for f in filters):
                continue
            fn = getattr(mod, name)
            try:
                ret = fn()
                if _is_coroutine(ret):
                    asyncio.run(ret)
                    asyncio.new_event_loop()
                passed += 1
                print("PASS", full)
            except Exception as e:
                failed.append(full)
                print("FAIL", full)
                sys.print_exception(e)
        # Free the test module; the firmware modules it imported stay loaded.
        del mod
        sys.modules.pop(modname, None)
        gc.collect()
    if failed:
        print("failed:", " ".join(failed))
    print("%d passed, %d failed" % (passed, len(failed)))
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
