# make bench: run the firmware micro-benchmarks under the unix port and print a table
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import vterm  # noqa: E402


def main():
    vterm.build(REPO / "build" / "bench", with_sim=True)
    # A large heap: the captures are held in RAM to time the parser alone.
    cmd = [vterm.micropython_cmd("112wK")[0], "-X", "heapsize=4M", str(REPO / "tools" / "bench" / "bench_mp.py")]
    proc = subprocess.run(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        print("bench: micropython failed:\n" + proc.stdout, file=sys.stderr)
        return 1
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.count("|") == 3]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print("MicroPython unix port, %s, heap %s" % (platform_note(), cmd[2]))
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) if i != 1 else r[i].rjust(widths[i]) for i in range(4)).rstrip())
    return 0


def platform_note():
    import platform

    return "%s %s" % (platform.machine(), platform.processor() or "")


if __name__ == "__main__":
    sys.exit(main())
