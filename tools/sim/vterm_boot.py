# Start script of the virtual terminal: tools/sim/vterm_main.py describes the steps and the variables it reads
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# This file stays small because the unix port compiles it before it runs: its
# bytecode is in the heap before the line below can measure anything. What the
# interpreter has allocated at that line plays a board's boot state and counts
# as the firmware's. Everything the simulator loads after it is the simulator's.

import gc

gc.collect()
_heap_start = gc.mem_alloc()

import os
import sys

# sys.path[0] is this script's folder. With VTERM_CODE, the compiled simulator
# is used instead, as the firmware is.
if os.getenv("VTERM_CODE"):
    sys.path.insert(0, os.getenv("VTERM_CODE") + "/sim")
import vterm_main

sys.exit(vterm_main.main(_heap_start))
