# Geofence and route-corridor geometry in integer metres, without heap allocation when evaluated
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
"""
Positions are ints in degrees x 10^5 ("e5", about 1.1 m). Shapes are built once
from validated config and tested on every GNSS fix:

    zone = Circle(3120000, 12140000, 500)
    route = Corridor([(3120000, 12140000), (3125000, 12145000)], 300)
    lat = fix_e5(p.lat_deg, p.lat_min_e7, p.lat_neg)
    lon = fix_e5(p.lon_deg, p.lon_min_e7, p.lon_neg)
    zone.contains(lat, lon), route.distance_m(lat, lon), route.inside(lat, lon)

fix_e5(), contains(), distance_m() and inside() allocate nothing, and every
intermediate int stays below 2**30, the ESP32's small-int limit. The bounds are
worked out at each product. Constructors and validators allocate and use floats.

Each shape has reference points (Circle: its centre, Polygon: its first point,
Corridor: the midpoint of each segment). A position is projected to metres
east (x) and north (y) of a reference with an equirectangular projection that
takes the cosine at the mean latitude of position and reference. The
projection window reaches 32 km north and south of the reference and 31 to
32 km east and west. Positions outside it count as far away, which means
outside a circle or polygon and at least FAR_M from a segment.

Accuracy, estimated against haversine on a sphere of radius 6371008.8 m (the
mean Earth radius) with random shapes in CPython:
- Circle.contains() is right for positions more than 0.6 m from the circle,
  up to latitude 80.
- Polygon.contains() agreed with an even-odd test on latitude and longitude
  for all of 43830 random positions around rings up to 20 km across.
- Corridor.distance_m(), against the distance to the straight line between the
  two points in latitude and longitude: within 2 m up to 2 km from segments of
  up to 5 km. For 20 km segments, within 3 m (latitude up to 45) or 6 m (up to
  60) up to 2 km away, and within 16 m at 19 km.
- A great-circle arc bulges from that straight line by up to about
  L**2 * tan(latitude) / (8 * 6371 km), 5.5 m for an east-west segment of
  L = 20 km at latitude 35.
- Spherical distances differ from WGS84 ellipsoid distances by up to 0.5%.

NOTE: shapes may not cross the 180th meridian. A position on the other side
of it is outside the projection window and counts as far away.
"""

import math
from array import array

try:
    from micropython import const
except ImportError:  # CPython, for host-side checks

    def const(value):
        return value


# distance_m() returns at most FAR_M, also for positions that are further away.
FAR_M = const(20000)
# Maximum distance of a ring point from the ring's first point.
MAX_EXTENT_M = const(20000)
# Maximum length of a route segment.
MAX_SEGMENT_M = const(20000)

# Shapes must lie within latitude +-80 degrees, where the bounds below hold.
_MAX_LAT_E5 = const(8000000)

# Metres per e5 unit of latitude in Q15 fixed point: 6371008.8 m * pi / 180
# * 1e-5 = 1.1119508 m, * 32768 = 36436.40, stored as 36436 (error 1.1e-5).
_Q_BITS = const(15)
_HALF_Q = const(16384)
_LAT_Q = const(36436)
_LAT_Q_EXACT = 36436.40

# Projection window: |x| and |y| at most 32000 m, so dlat * _LAT_Q and dlon * q
# stay at most _WINDOW_Q = 32000 * 32768 = 1048576000 < 2**30 = 1073741824.
_WINDOW_Q = const(1048576000)
_WINDOW_LAT_E5 = const(28778)  # 1048576000 // 36436

# Mean-latitude correction k in Q20: q at the mean latitude is
# q - dlat * k / 2**20, with |k| <= 36436.4 * pi / 36000000 * 2**20 = 3335.
_K_BITS = const(20)
_HALF_K = const(524288)

# Corridor segments are rows of _ROW ints in one array: mid_lat_e5,
# mid_lon_e5, q, k, window_lon_e5, ax, ay, dx, dy, len_scaled, shift.
_ROW = const(11)
# Bounds for the division by the segment length in Corridor.distance_m().
_LEN_SCALED_MAX = const(53000)
_CROSS_MAX = const(1073676288)  # 2**30 - 2**16

# x, y (metres) written by _project(), so that it need not return a tuple.
# Not reentrant, which is fine while one task evaluates positions.
_XY = array("i", (0, 0))


def fix_e5(deg, min_e7, neg):
    # Convert an NMEA position field to signed degrees x 1e5, rounded half away
    # from zero: 1e5 / 60 / 1e7 = 1 / 6000, and min_e7 < 6e8.
    value = deg * 100000 + (min_e7 + 3000) // 6000
    return -value if neg else value


def deg_e5(value):
    # Convert degrees (float) to e5, rounded half away from zero. On the ESP32
    # floats are single precision, so the result can be 1 unit off.
    scaled = value * 100000
    if scaled < 0:
        return -int(-scaled + 0.5)
    return int(scaled + 0.5)


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
    k = _LAT_Q_EXACT * math.sin(phi) * (math.pi / 36000000) * (1 << _K_BITS)
    k = int(k + 0.5) if k >= 0 else -int(-k + 0.5)
    # The largest corrected q inside the window bounds dlon * q by _WINDOW_Q.
    q_max = q + ((_WINDOW_LAT_E5 * abs(k) + _HALF_K) >> _K_BITS) + 1
    return q, k, _WINDOW_Q // q_max


def _project(dlat, dlon, q, k, window_lon):
    # Store in _XY the metres east and north of a position dlat, dlon e5 units
    # from a reference and return True, or return False outside the window.
    if dlat > _WINDOW_LAT_E5 or dlat < -_WINDOW_LAT_E5 or dlon > window_lon or dlon < -window_lon:
        return False
    # |dlat * k| <= 28778 * 3335 = 9.6e7. q_mean <= q_max of _scales(), so
    # |dlon * q_mean| <= _WINDOW_Q, and |dlat * _LAT_Q| <= 28778 * 36436
    # = 1048555208; adding _HALF_Q keeps both below 2**30.
    q_mean = q - ((dlat * k + _HALF_K) >> _K_BITS)
    _XY[0] = (dlon * q_mean + _HALF_Q) >> _Q_BITS
    _XY[1] = (dlat * _LAT_Q + _HALF_Q) >> _Q_BITS
    return True


def _length_m(ex, ey):
    # Return the length of (ex, ey) metres rounded to metres, at most FAR_M.
    if ex > FAR_M or ex < -FAR_M or ey > FAR_M or ey < -FAR_M:
        return FAR_M
    n = ex * ex + ey * ey  # <= 2 * 20000**2 = 8e8
    if n == 0:
        return 0
    # Integer Newton iteration from |ex| + |ey| >= sqrt(n) down to floor(sqrt(n)).
    r = abs(ex) + abs(ey)
    while True:
        smaller = (r + n // r) >> 1
        if smaller >= r:
            break
        r = smaller
    if n - r * r > r:
        r += 1
    return r if r < FAR_M else FAR_M


def _check_latitudes(points):
    for i, p in enumerate(points):
        if p[0] > _MAX_LAT_E5 or p[0] < -_MAX_LAT_E5:
            raise ValueError("point %d %s is beyond latitude +-80, which is not supported" % (i, _deg_text(p)))


def _rough_m(a, b):
    # Return the float equirectangular distance of two e5 points, for messages.
    dy = (b[0] - a[0]) * 1.1119508
    dx = (b[1] - a[1]) * 1.1119508 * math.cos((a[0] + b[0]) * (math.pi / 36000000))
    return int(math.sqrt(dx * dx + dy * dy) + 0.5)


class Circle:
    def __init__(self, lat_e5, lon_e5, radius_m):
        # Whole metres, so contains() multiplies ints only.
        r = int(radius_m + 0.5)
        if not 0 < r <= MAX_EXTENT_M:
            raise ValueError("circle radius %s m is out of range 1..%d" % (radius_m, MAX_EXTENT_M))
        _check_latitudes(((lat_e5, lon_e5),))
        self.lat_e5 = lat_e5
        self.lon_e5 = lon_e5
        self.radius_m = r
        self._q, self._k, self._window_lon = _scales(lat_e5)

    def contains(self, lat_e5, lon_e5):
        if not _project(lat_e5 - self.lat_e5, lon_e5 - self.lon_e5, self._q, self._k, self._window_lon):
            return False
        x = _XY[0]
        y = _XY[1]
        r = self.radius_m
        if x > r or x < -r or y > r or y < -r:
            return False
        return x * x + y * y <= r * r  # <= 2 * 20000**2 = 8e8


class Polygon:
    def __init__(self, points):
        n = len(points)
        if n < 4:
            raise ValueError("ring needs at least 4 points, got %d" % n)
        first = points[0]
        if first[0] != points[-1][0] or first[1] != points[-1][1]:
            raise ValueError("ring is not closed: first %s != last %s" % (_deg_text(first), _deg_text(points[-1])))
        _check_latitudes(points)
        distinct = len(set((p[0], p[1]) for p in points))
        if distinct < 3:
            raise ValueError("ring needs at least 3 distinct points, got %d" % distinct)

        # Project every point relative to the first. The extent limit bounds
        # the products in contains().
        self._lat = first[0]
        self._lon = first[1]
        q, k, window_lon = _scales(first[0])
        self._q, self._k, self._window_lon = q, k, window_lon
        # A bytes-like initializer is copied as raw memory: 2 bytes per "h" item.
        xs = self._xs = array("h", bytearray(2 * n))
        ys = self._ys = array("h", bytearray(2 * n))
        for i, p in enumerate(points):
            if not _project(p[0] - first[0], p[1] - first[1], q, k, window_lon):
                raise ValueError("point %d is %d m from point 0 (limit %d)" % (i, _rough_m(first, p), MAX_EXTENT_M))
            x, y = _XY
            if x * x + y * y > MAX_EXTENT_M * MAX_EXTENT_M:
                distance = int(math.sqrt(x * x + y * y) + 0.5)
                raise ValueError("point %d is %d m from point 0 (limit %d)" % (i, distance, MAX_EXTENT_M))
            xs[i] = x
            ys[i] = y
        self._box = (min(xs), max(xs), min(ys), max(ys))

        # Twice the signed area in e5 units, which is exact, so collinear
        # points give 0.
        area2 = 0
        for i in range(n - 1):
            a, b = points[i], points[i + 1]
            area2 += (a[1] - first[1]) * (b[0] - first[0]) - (b[1] - first[1]) * (a[0] - first[0])
        if area2 == 0:
            raise ValueError("ring has zero area: its points lie on one line or enclose nothing")
        reason = _edge_problem(xs, ys)
        if reason:
            raise ValueError(reason)

    def contains(self, lat_e5, lon_e5):
        # Even-odd rule with a ray towards +x. A point exactly on an edge may
        # count as inside or outside.
        if not _project(lat_e5 - self._lat, lon_e5 - self._lon, self._q, self._k, self._window_lon):
            return False
        px = _XY[0]
        py = _XY[1]
        box = self._box
        if px < box[0] or px > box[1] or py < box[2] or py > box[3]:
            return False

        xs = self._xs
        ys = self._ys
        inside = False
        x1 = xs[0]
        y1 = ys[0]
        for i in range(1, len(xs)):
            x2 = xs[i]
            y2 = ys[i]
            if (y1 > py) != (y2 > py):
                if px < x1 and px < x2:
                    inside = not inside
                elif px < x1 or px < x2:
                    # The edge crosses the ray when px is left of the edge at py.
                    # Here |px - x1| <= |dx| and |py - y1| <= |dy| of the edge, so
                    # both products are at most |dx| * |dy| <= edge**2 / 2
                    # <= 40000**2 / 2 = 8e8, as every point is within 20 km of the first.
                    if ((px - x1) * (y2 - y1) < (py - y1) * (x2 - x1)) == (y2 > y1):
                        inside = not inside
            x1 = x2
            y1 = y2
        return inside


def _edge_problem(xs, ys):
    # Return a reason when edges cross or touch, or adjacent edges fold back
    # onto each other. Edge i joins points i and i + 1, and zero-length edges
    # are skipped. This runs at construction only, where products may be long ints.
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


class Corridor:
    def __init__(self, points, width_m):
        n = len(points)
        if n < 2:
            raise ValueError("route needs at least 2 points, got %d" % n)
        width = int(width_m + 0.5)
        if not 0 < width < FAR_M:
            raise ValueError("corridor width %s m is out of range 1..%d" % (width_m, FAR_M - 1))
        _check_latitudes(points)
        self.width_m = width
        # Sized up front (4 bytes per "i" item), as appending would
        # over-allocate while the array grows.
        rows = self._rows = array("i", bytearray(4 * _ROW * (n - 1)))
        for i in range(n - 1):
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
                rows[i * _ROW + j] = v

    def distance_m(self, lat_e5, lon_e5):
        # Return metres to the nearest segment, at most FAR_M.
        # Bounds: the position P has |px|, |py| <= 32000, so |P| <= 45255, and
        # |D| <= 20000, so P . D and P x D are at most 9.06e8. Up to latitude
        # 80 the segment ends lie within 10200 m of the midpoint and 45 m of
        # the line through it along D (the worst of 20000 random 20 km segments:
        # 10015 m and 17 m). So |A x D| <= 1e6, and every position outside the
        # window is more than 31000 - 10200 m > FAR_M away.
        rows = self._rows
        best = FAR_M
        for i in range(0, len(rows), _ROW):
            if not _project(lat_e5 - rows[i], lon_e5 - rows[i + 1], rows[i + 2], rows[i + 3], rows[i + 4]):
                continue
            px = _XY[0]
            py = _XY[1]
            ax = rows[i + 5]
            ay = rows[i + 6]
            dx = rows[i + 7]
            dy = rows[i + 8]
            along = px * dx + py * dy
            along_a = ax * dx + ay * dy
            if along <= along_a:
                d = _length_m(px - ax, py - ay)
            elif along >= along_a + dx * dx + dy * dy:
                d = _length_m(px - ax - dx, py - ay - dy)
            else:
                # Distance to the line: |(P - A) x D| / |D|. When |cross| is over
                # _CROSS_MAX >> shift the distance is over _CROSS_MAX / 53000.5
                # = 20257 m. Otherwise (cross << shift) + scaled / 2 stays below
                # _CROSS_MAX + 26500 < 2**30.
                cross = px * dy - py * dx - (ax * dy - ay * dx)
                if cross < 0:
                    cross = -cross
                shift = rows[i + 10]
                if cross > _CROSS_MAX >> shift:
                    continue
                scaled = rows[i + 9]
                d = ((cross << shift) + (scaled >> 1)) // scaled
            if d < best:
                best = d
        return best

    def inside(self, lat_e5, lon_e5):
        return self.distance_m(lat_e5, lon_e5) <= self.width_m


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
