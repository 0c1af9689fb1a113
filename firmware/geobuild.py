# Building geofence and corridor shapes from configuration: validation and projection
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The constructors of firmware.geo call these, so this module is in the heap
# only while shapes are built or a configuration is checked; the caller drops
# it afterwards with transient.unload("firmware.geobuild"). Floats and long ints
# are fine here: this runs once per configuration, not per fix.

import math
from array import array

try:
    from micropython import const
except ImportError:  # CPython, for host-side checks

    def const(value):
        return value


from firmware.geo import (
    FAR_M,
    HALF_K,
    K_BITS,
    MAX_EXTENT_M,
    MAX_SEGMENT_M,
    PART_ROWS,
    ROW,
    WINDOW_LAT_E5,
    Corridor,
    Polygon,
    _XY,
    _project,
    deg_e5,
)

# Shapes must lie within latitude +-80 degrees, where the bounds of firmware.geo hold.
_MAX_LAT_E5 = const(8000000)
# Metres per e5 unit of latitude in Q15 before rounding (see firmware.geo).
_LAT_Q_EXACT = 36436.40
# The projection window bound: 32000 m * 32768.
_WINDOW_Q = const(1048576000)
# Bound for the division by the segment length in Corridor.distance_m().
_LEN_SCALED_MAX = const(53000)


def _deg_text(point):
    # Format an e5 point as "[31.2, 121.4]" for messages.
    parts = []
    for v in (point[0], point[1]):
        text = "%s%d.%05d" % ("-" if v < 0 else "", abs(v) // 100000, abs(v) % 100000)
        parts.append(text.rstrip("0") + ("0" if text.endswith("00000") else ""))
    return "[%s, %s]" % tuple(parts)


def _scales(lat_e5):
    # Return (q, k, window_lon_e5) for a reference latitude: q is metres per
    # e5 unit of longitude in Q15 and k the mean-latitude correction in Q20.
    phi = lat_e5 * (math.pi / 18000000)
    q = max(1, int(_LAT_Q_EXACT * math.cos(phi) + 0.5))
    k = _LAT_Q_EXACT * math.sin(phi) * (math.pi / 36000000) * (1 << K_BITS)
    k = int(k + 0.5) if k >= 0 else -int(-k + 0.5)
    # The largest corrected q inside the window bounds dlon * q by _WINDOW_Q.
    q_max = q + ((WINDOW_LAT_E5 * abs(k) + HALF_K) >> K_BITS) + 1
    return q, k, _WINDOW_Q // q_max


def _check_latitudes(points):
    for i, p in enumerate(points):
        if p[0] > _MAX_LAT_E5 or p[0] < -_MAX_LAT_E5:
            raise ValueError("point %d %s is beyond latitude +-80, which is not supported" % (i, _deg_text(p)))


def _check_meridian(points):
    # Consecutive points more than 180 degrees of longitude apart are on both
    # sides of the 180th meridian, where a shape would otherwise be reported
    # as tens of thousands of kilometres long.
    for i in range(len(points) - 1):
        if abs(points[i + 1][1] - points[i][1]) > 18000000:
            raise ValueError("points %d %s and %d %s are on both sides of the 180th meridian, which is not"
                             " supported: split the shape there" % (i, _deg_text(points[i]), i + 1,
                                                                    _deg_text(points[i + 1])))


def _rough_m(a, b):
    # Return the float equirectangular distance of two e5 points, for messages.
    dy = (b[0] - a[0]) * 1.1119508
    dx = (b[1] - a[1]) * 1.1119508 * math.cos((a[0] + b[0]) * (math.pi / 36000000))
    return int(math.sqrt(dx * dx + dy * dy) + 0.5)


def circle(shape, lat_e5, lon_e5, radius_m):
    # Whole metres, so contains() multiplies ints only.
    r = int(radius_m + 0.5)
    if not 0 < r <= MAX_EXTENT_M:
        raise ValueError("circle radius %s m is out of range 1..%d" % (radius_m, MAX_EXTENT_M))
    _check_latitudes(((lat_e5, lon_e5),))
    shape.lat_e5 = lat_e5
    shape.lon_e5 = lon_e5
    shape.radius_m = r
    shape._q, shape._k, shape._window_lon = _scales(lat_e5)


def polygon(shape, points):
    n = len(points)
    if n < 4:
        raise ValueError("ring needs at least 4 points, got %d" % n)
    first = points[0]
    if first[0] != points[-1][0] or first[1] != points[-1][1]:
        raise ValueError("ring is not closed: first %s != last %s" % (_deg_text(first), _deg_text(points[-1])))
    _check_latitudes(points)
    _check_meridian(points)
    distinct = len(set((p[0], p[1]) for p in points))
    if distinct < 3:
        raise ValueError("ring needs at least 3 distinct points, got %d" % distinct)

    # Project every point relative to the first. The extent limit bounds
    # the products in contains().
    shape._lat = first[0]
    shape._lon = first[1]
    q, k, window_lon = _scales(first[0])
    shape._q, shape._k, shape._window_lon = q, k, window_lon
    # A bytes-like initializer is copied as raw memory: 2 bytes per "h" item.
    xs = shape._xs = array("h", bytearray(2 * n))
    ys = shape._ys = array("h", bytearray(2 * n))
    for i, p in enumerate(points):
        if not _project(p[0] - first[0], p[1] - first[1], q, k, window_lon):
            raise ValueError("point %d is %d m from point 0 (limit %d)" % (i, _rough_m(first, p), MAX_EXTENT_M))
        x, y = _XY
        if x * x + y * y > MAX_EXTENT_M * MAX_EXTENT_M:
            distance = int(math.sqrt(x * x + y * y) + 0.5)
            raise ValueError("point %d is %d m from point 0 (limit %d)" % (i, distance, MAX_EXTENT_M))
        xs[i] = x
        ys[i] = y
    shape._box = (min(xs), max(xs), min(ys), max(ys))

    # Twice the signed area in e5 units, which is exact, so collinear
    # points give 0.
    area2 = 0
    for i in range(n - 1):
        a, b = points[i], points[i + 1]
        area2 += (a[1] - first[1]) * (b[0] - first[0]) - (b[1] - first[1]) * (a[0] - first[0])
    reason = _edge_problem(xs, ys)
    if area2 == 0 and not (reason and reason.endswith("cross")):
        # A bowtie with equal lobes also sums to zero: its crossing is the
        # clearer reason. Points on one line only overlap or touch.
        raise ValueError("ring has zero area: its points lie on one line or enclose nothing")
    if reason:
        raise ValueError(reason)


def _edge_problem(xs, ys):
    # Return a reason when edges cross or touch, or adjacent edges fold back
    # onto each other. Edge i joins points i and i + 1, and zero-length edges
    # are skipped.
    edges = [i for i in range(len(xs) - 1) if xs[i] != xs[i + 1] or ys[i] != ys[i + 1]]

    def side(i, j):
        # Return the side of edge i that point j is on: -1, 0 or 1.
        v = (xs[i + 1] - xs[i]) * (ys[j] - ys[i]) - (ys[i + 1] - ys[i]) * (xs[j] - xs[i])
        return (v > 0) - (v < 0)

    def on_edge(i, j):
        # Return whether point j, on the line of edge i, lies on the edge.
        x_ok = min(xs[i], xs[i + 1]) <= xs[j] <= max(xs[i], xs[i + 1])
        return x_ok and min(ys[i], ys[i + 1]) <= ys[j] <= max(ys[i], ys[i + 1])

    m = len(edges)
    for u in range(m):
        for v in range(u + 1, m):
            i, j = edges[u], edges[v]
            if v == u + 1 or (u == 0 and v == m - 1):
                # Adjacent edges share one point unless they fold back.
                dot = (xs[i + 1] - xs[i]) * (xs[j + 1] - xs[j]) + (ys[i + 1] - ys[i]) * (ys[j + 1] - ys[j])
                if side(i, j) == 0 and side(i, j + 1) == 0 and dot < 0:
                    return "edges %d and %d overlap" % (i, j)
                continue
            s1, s2, s3, s4 = side(i, j), side(i, j + 1), side(j, i), side(j, i + 1)
            if s1 * s2 < 0 and s3 * s4 < 0:
                return "edges %d and %d cross" % (i, j)
            if (s1 == 0 and on_edge(i, j)) or (s2 == 0 and on_edge(i, j + 1)):
                return "edges %d and %d touch" % (i, j)
            if (s3 == 0 and on_edge(j, i)) or (s4 == 0 and on_edge(j, i + 1)):
                return "edges %d and %d touch" % (i, j)
    return None


def corridor(shape, points, width_m):
    n = len(points)
    if n < 2:
        raise ValueError("route needs at least 2 points, got %d" % n)
    width = int(width_m + 0.5)
    if not 0 < width < FAR_M:
        raise ValueError("corridor width %s m is out of range 1..%d" % (width_m, FAR_M - 1))
    _check_latitudes(points)
    _check_meridian(points)
    shape.width_m = width
    # Each part is sized up front (4 bytes per "i" item), as appending would
    # over-allocate while the array grows.
    parts = shape._parts = []
    for first in range(0, n - 1, PART_ROWS):
        parts.append(array("i", bytearray(4 * ROW * min(PART_ROWS, n - 1 - first))))
    for i in range(n - 1):
        rows = parts[i // PART_ROWS]
        at = (i % PART_ROWS) * ROW
        a, b = points[i], points[i + 1]
        if a[0] == b[0] and a[1] == b[1]:
            raise ValueError("points %d and %d are equal: %s" % (i, i + 1, _deg_text(a)))
        mid_lat = (a[0] + b[0]) // 2
        mid_lon = (a[1] + b[1]) // 2
        q, k, window_lon = _scales(mid_lat)
        if not _project(a[0] - mid_lat, a[1] - mid_lon, q, k, window_lon):
            raise ValueError("segment %d is %d m long (limit %d)" % (i, _rough_m(a, b), MAX_SEGMENT_M))
        ax, ay = _XY
        if not _project(b[0] - mid_lat, b[1] - mid_lon, q, k, window_lon):
            raise ValueError("segment %d is %d m long (limit %d)" % (i, _rough_m(a, b), MAX_SEGMENT_M))
        dx, dy = _XY[0] - ax, _XY[1] - ay
        length = math.sqrt(dx * dx + dy * dy)
        if dx * dx + dy * dy > MAX_SEGMENT_M * MAX_SEGMENT_M:
            raise ValueError("segment %d is %d m long (limit %d)" % (i, int(length + 0.5), MAX_SEGMENT_M))
        # The largest shift with length << shift <= _LEN_SCALED_MAX, so the
        # scaled length is exact to 1 part in 26500. A segment shorter than
        # about 0.5 m can project to dx = dy = 0 and is then measured as a point.
        shift = 0
        while length and length * (2 << shift) <= _LEN_SCALED_MAX:
            shift += 1
        scaled = max(1, int(length * (1 << shift) + 0.5))
        for j, v in enumerate((mid_lat, mid_lon, q, k, window_lon, ax, ay, dx, dy, scaled, shift)):
            rows[at + j] = v


def ring_problem(points):
    # Return why a geofence ring of [lat, lon] degree pairs is invalid, or None.
    try:
        Polygon([(deg_e5(p[0]), deg_e5(p[1])) for p in points])
    except ValueError as e:
        return str(e)
    return None


def route_problem(points):
    # Return why a route of [lat, lon] degree pairs is invalid, or None.
    try:
        Corridor([(deg_e5(p[0]), deg_e5(p[1])) for p in points], 1)
    except ValueError as e:
        return str(e)
    return None
