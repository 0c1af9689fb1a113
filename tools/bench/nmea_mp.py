# NMEA parser throughput and allocations on one multi-GNSS capture: ours, and micropyGPS and as_GPS when given
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Run by tools/bench.py from the repository root, after it has compiled the firmware:
#   micropython -X heapsize=4M tools/bench/nmea_mp.py [PEERS]
# PEERS is a folder holding the modules micropyGPS (github.com/inmcm/micropyGPS)
# and as_GPS (github.com/peterhinch/micropython-async, v3/as_drivers/as_GPS),
# as .py or .mpy. tools/bench.py passes them compiled with the firmware's
# mpy-cross options. Neither is part of this repository. Without PEERS only
# our rows are printed.
# Prints one "name|value|unit|note" row per measurement.
#
# All parsers get the same two streams: every "$" line of _CAPTURE ("full"),
# and only its RMC, VTG, GGA and GLL lines ("position"), the types that all
# three parsers have decoders for. Each parser is fed through the method that
# takes the receiver's data in its own design:
#   ours per line    nmea.Parser.parse(line, n), as gnss.GNSS calls it for each line
#   ours per chunk   gnss.GNSS.feed(chunk, n) on 128-byte chunks, so line splitting included
#   micropyGPS       MicropyGPS.update(char) for each character of the stream as a str
#   as_GPS           await AS_GPS._update(line) for each line as a str ending in CR LF, all
#                    in one task. AS_GPS(None) starts no UART reader task.

import asyncio
import gc
import sys
import time

sys.path[:] = ["build/bench/sim", "build/bench", ".frozen", "tools/bench"]

from firmware import gnss, nmea

_CAPTURE = "tests/data/nmea/ublox-neo-m9n-nmea.log"
_CHUNK_BYTES = 128  # the maximum that one UART read returns in firmware/gnss.py
_POSITION_TYPES = (b"RMC", b"VTG", b"GGA", b"GLL")
_ROUNDS = 5  # timed batches per parser and stream, taken in turn between the parsers
_BATCH_US = 200000  # passes per batch are chosen to last about this long
_GC_EVERY_LINES = 32  # the allocation pass collects between groups of this many lines
_RATE_HZ = 10
_REPLAY_S = 5


def row(name, value, unit, note=""):
    print("%s|%s|%s|%s" % (name, value, unit, note))


class Stream:
    """NMEA sentences in the form each parser takes."""

    def __init__(self, title, raw_lines):
        self.title = title
        self.count = len(raw_lines)
        # Parser.parse: one bytearray per line without CR LF, as GNSS.feed passes it.
        self.lines = [bytearray(ln) for ln in raw_lines]
        data = b"".join(ln + b"\r\n" for ln in raw_lines)
        self.bytes = len(data)
        # GNSS.feed: the serial byte stream cut into UART-sized chunks.
        self.chunks = [bytearray(data[i : i + _CHUNK_BYTES]) for i in range(0, len(data), _CHUNK_BYTES)]
        # micropyGPS: the whole stream as one str.
        self.text = data.decode()
        # as_GPS: one str per line, as its reader task gets it from readline() and decode().
        self.line_strs = [(ln + b"\r\n").decode() for ln in raw_lines]


def load_capture():
    lines = []
    with open(_CAPTURE, "rb") as f:
        for raw in f:
            raw = raw.strip()
            if raw.startswith(b"$"):
                lines.append(raw)
    return lines


def split_epochs(raw_lines):
    # This receiver starts each 1 Hz epoch with RMC.
    epochs = []
    for ln in raw_lines:
        if ln[3:6] == b"RMC" or not epochs:
            epochs.append([])
        epochs[-1].append(ln)
    return epochs


# Feeders: each runs a stream through one parser instance the given number of
# times and returns how many sentences the parser decoded (not only checked)
# in the last pass.


def feed_ours_lines(parser, stream, passes):
    decoded = 0
    for _ in range(passes):
        decoded = 0
        for ln in stream.lines:
            code = parser.parse(ln, len(ln))
            if code != nmea.REJECTED and code != nmea.OTHER:
                decoded += 1
    return decoded


def feed_ours_chunks(reader, stream, passes):
    parser = reader.parser
    before = 0
    for _ in range(passes):
        before = parser.sentences - parser.unsupported
        for chunk in stream.chunks:
            reader.feed(chunk, len(chunk))
    return parser.sentences - parser.unsupported - before


def feed_micropygps(gps, stream, passes):
    before = 0
    for _ in range(passes):
        before = gps.parsed_sentences
        for c in stream.text:
            gps.update(c)
    return gps.parsed_sentences - before


async def _feed_as_gps_task(gps, stream, passes):
    # as_GPS counts a sentence that it passes to its parse() hook unparsed in
    # both parsed_sentences and unsupported_sentences.
    before = 0
    for _ in range(passes):
        before = gps.parsed_sentences - gps.unsupported_sentences
        for ln in stream.line_strs:
            await gps._update(ln)
    return gps.parsed_sentences - gps.unsupported_sentences - before


def feed_as_gps(gps, stream, passes):
    return asyncio.run(_feed_as_gps_task(gps, stream, passes))


# Allocation passes: each feeds one pass in the same way as its feeder and adds
# the gc.mem_alloc() growth across each line or chunk to a meter.


class AllocationMeter:
    """Sum of the heap growth across measured spans, with gc.collect() between some spans."""

    def __init__(self):
        self.total = 0
        self._spans = 0
        self._before = 0

    def begin(self):
        # The automatic collection is off, so the garbage of
        # _GC_EVERY_LINES spans is collected here, outside any span.
        if self._spans % _GC_EVERY_LINES == 0:
            gc.collect()
        self._spans += 1
        self._before = gc.mem_alloc()

    def end(self):
        self.total += gc.mem_alloc() - self._before


def alloc_ours_lines(parser, stream, meter):
    for ln in stream.lines:
        meter.begin()
        parser.parse(ln, len(ln))
        meter.end()


def alloc_ours_chunks(reader, stream, meter):
    for chunk in stream.chunks:
        meter.begin()
        reader.feed(chunk, len(chunk))
        meter.end()


def alloc_micropygps(gps, stream, meter):
    for ln in stream.line_strs:
        meter.begin()
        for c in ln:
            gps.update(c)
        meter.end()


async def _alloc_as_gps_task(gps, stream, meter):
    for ln in stream.line_strs:
        meter.begin()
        await gps._update(ln)
        meter.end()


def alloc_as_gps(gps, stream, meter):
    asyncio.run(_alloc_as_gps_task(gps, stream, meter))


class Contender:
    """One parser: its row label, how it is fed, and a factory for an instance."""

    def __init__(self, label, entry, make, feed, alloc):
        self.label = label
        self.entry = entry
        self.make = make
        self.feed = feed
        self.alloc = alloc


def contenders(peers):
    found = [
        Contender("ours per line", "Parser.parse per line", nmea.Parser, feed_ours_lines, alloc_ours_lines),
        Contender("ours per chunk", "GNSS.feed per 128 bytes", lambda: gnss.GNSS(None),
                  feed_ours_chunks, alloc_ours_chunks),
    ]
    if not peers:
        return found
    sys.path.append(peers)
    import as_GPS
    import micropyGPS

    found.append(Contender("micropyGPS", "update() per character", micropyGPS.MicropyGPS,
                           feed_micropygps, alloc_micropygps))
    found.append(Contender("as_GPS", "await _update() per line", lambda: as_GPS.AS_GPS(None),
                           feed_as_gps, alloc_as_gps))
    return found


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


class Result:
    """Rates in sentences/s over the timed batches of one parser on one stream."""

    def __init__(self, rates, decoded):
        self.median = median(rates)
        self.low = min(rates)
        self.high = max(rates)
        self.decoded = decoded


def measure_rates(entries, stream):
    # Return the Result and the instance of each parser. Each instance is
    # warmed up by a first pass: interned strings, dicts and lists reach their
    # steady size, and the time of that pass sets how many passes make one
    # batch. The batches then go parser by parser in turn, so that a slow
    # spell of this shared machine falls on all of them.
    instances = {}
    passes = {}
    decoded = {}
    for c in entries:
        instances[c.label] = c.make()
        gc.collect()
        t0 = time.ticks_us()
        decoded[c.label] = c.feed(instances[c.label], stream, 1)
        once_us = max(1, time.ticks_diff(time.ticks_us(), t0))
        passes[c.label] = max(1, _BATCH_US // once_us)

    rates = {c.label: [] for c in entries}
    for _ in range(_ROUNDS):
        for c in entries:
            n = passes[c.label]
            gc.collect()
            t0 = time.ticks_us()
            c.feed(instances[c.label], stream, n)
            dt = time.ticks_diff(time.ticks_us(), t0)
            rates[c.label].append(stream.count * n * 1000000 // dt)
    return {c.label: Result(rates[c.label], decoded[c.label]) for c in entries}, instances


def allocated_per_sentence(c, instance, stream):
    # Return the bytes allocated per sentence over one pass of an instance
    # that has already seen the stream, with the automatic collection off.
    meter = AllocationMeter()
    gc.collect()
    gc.disable()
    try:
        c.alloc(instance, stream, meter)
    finally:
        gc.enable()
    return meter.total / stream.count


def stream_rows(entries, stream):
    results, instances = measure_rates(entries, stream)
    for c in entries:
        r = results[c.label]
        note = "%s; median of %d batches, range %d-%d; decoded %d of %d" % (
            c.entry, _ROUNDS, r.low, r.high, r.decoded, stream.count)
        row("NMEA %s, %s" % (stream.title, c.label), r.median, "sentences/s", note)
    for c in entries:
        per_sentence = allocated_per_sentence(c, instances[c.label], stream)
        row("NMEA %s, %s, allocated" % (stream.title, c.label), "%.0f" % per_sentence, "bytes/sentence",
            "gc.mem_alloc() growth with gc disabled, instance warmed up")
    return results


def speedup_rows(entries, stream, results):
    peers = [c for c in entries if not c.label.startswith("ours")]
    if not peers:
        return
    fastest = max(peers, key=lambda c: results[c.label].median)
    peer_rate = results[fastest.label].median
    for c in entries[:2]:
        row("NMEA %s, %s / fastest peer" % (stream.title, c.label), "%.1f" % (results[c.label].median / peer_rate),
            "times", "%s at %d sentences/s" % (fastest.label, peer_rate))


def replay_cpu(epochs):
    # Feed one capture epoch every 1/_RATE_HZ s through GNSS.feed for
    # _REPLAY_S s and return the % of the wall time spent inside feed().
    period_us = 1000000 // _RATE_HZ
    epoch_chunks = []
    for lines in epochs:
        data = b"".join(ln + b"\r\n" for ln in lines)
        epoch_chunks.append([bytearray(data[i : i + _CHUNK_BYTES]) for i in range(0, len(data), _CHUNK_BYTES)])
    reader = gnss.GNSS(None)
    busy_us = 0
    ticks = _REPLAY_S * _RATE_HZ
    start = time.ticks_us()
    for k in range(ticks):
        t0 = time.ticks_us()
        for chunk in epoch_chunks[k % len(epoch_chunks)]:
            reader.feed(chunk, len(chunk))
        busy_us += time.ticks_diff(time.ticks_us(), t0)
        wait_us = time.ticks_diff(time.ticks_add(start, (k + 1) * period_us), time.ticks_us())
        if wait_us > 0:
            time.sleep_us(wait_us)
    wall_us = time.ticks_diff(time.ticks_us(), start)
    return 100 * busy_us / wall_us, ticks, reader.parser.sentences


def main():
    peers = sys.argv[1] if len(sys.argv) > 1 else ""
    raw_lines = load_capture()
    epochs = split_epochs(raw_lines)
    entries = contenders(peers)
    full = Stream("full", raw_lines)
    position = Stream("position", [ln for ln in raw_lines if ln[3:6] in _POSITION_TYPES])

    name = _CAPTURE.rpartition("/")[2]
    row("NMEA full stream", full.count, "sentences", "%s: %d bytes, %d epochs at 1 Hz of %d sentences"
        % (name, full.bytes, len(epochs), full.count // len(epochs)))
    row("NMEA position stream", position.count, "sentences",
        "its RMC, VTG, GGA and GLL lines, types that all three parsers have decoders for")
    full_results = stream_rows(entries, full)
    speedup_rows(entries, full, full_results)
    position_results = stream_rows(entries, position)
    speedup_rows(entries, position, position_results)

    # CPU share of our reader at 10 Hz: computed from the per-chunk rate, then
    # measured on a replay paced in real time.
    per_second = full.count * _RATE_HZ // len(epochs)
    chunk_rate = full_results["ours per chunk"].median
    row("NMEA CPU at %d Hz, computed" % _RATE_HZ, "%.2f" % (100 * per_second / chunk_rate), "% of one core",
        "%d sentences/s / ours per chunk, full stream" % per_second)
    share, ticks, sentences = replay_cpu(epochs)
    row("NMEA CPU at %d Hz, measured" % _RATE_HZ, "%.2f" % share, "% of one core",
        "time in GNSS.feed / wall time, %d epochs in %d s, %d sentences" % (ticks, _REPLAY_S, sentences))


main()
