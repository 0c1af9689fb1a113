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
worked out at each product. Constructors and validators allocate and use floats;
their code is in firmware.geobuild, loaded only while shapes are built.

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

# Metres per e5 unit of latitude in Q15 fixed point: 6371008.8 m * pi / 180
# * 1e-5 = 1.1119508 m, * 32768 = 36436.40, stored as 36436 (error 1.1e-5).
_Q_BITS = const(15)
_HALF_Q = const(16384)
_LAT_Q = const(36436)

# Projection window: |x| and |y| at most 32000 m, so dlat * _LAT_Q and dlon * q
# stay at most 32000 * 32768 = 1048576000 < 2**30 = 1073741824.
WINDOW_LAT_E5 = const(28778)  # 1048576000 // 36436

# Mean-latitude correction k in Q20: q at the mean latitude is
# q - dlat * k / 2**20, with |k| <= 36436.4 * pi / 36000000 * 2**20 = 3335.
K_BITS = const(20)
HALF_K = const(524288)

# Corridor segments are rows of ROW ints: mid_lat_e5, mid_lon_e5, q, k,
# window_lon_e5, ax, ay, dx, dy, len_scaled, shift. They are kept in arrays of
# up to PART_ROWS rows (352 bytes), because a 64-point route in one array
# needs a free block of 2.7 KB, which a fragmented heap may not have.
ROW = const(11)
PART_ROWS = const(8)
# Bound for the division by the segment length in Corridor.distance_m().
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


def _project(dlat, dlon, q, k, window_lon):
    # Store in _XY the metres east and north of a position dlat, dlon e5 units
    # from a reference and return True, or return False outside the window.
    if dlat > WINDOW_LAT_E5 or dlat < -WINDOW_LAT_E5 or dlon > window_lon or dlon < -window_lon:
        return False
    # |dlat * k| <= 28778 * 3335 = 9.6e7. q_mean <= q_max of
    # geobuild._scales(), so |dlon * q_mean| <= 1048576000, and |dlat * _LAT_Q| <= 28778 * 36436
    # = 1048555208; adding _HALF_Q keeps both below 2**30.
    q_mean = q - ((dlat * k + HALF_K) >> K_BITS)
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


def _builder():
    # The constructors' validation and projection code (firmware.geobuild) is
    # needed once per configuration change. The caller that builds shapes drops
    # it again with transient.unload("firmware.geobuild").
    from firmware import geobuild

    return geobuild


class Circle:
    def __init__(self, lat_e5, lon_e5, radius_m):
        _builder().circle(self, lat_e5, lon_e5, radius_m)

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
        _builder().polygon(self, points)

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


class Corridor:
    def __init__(self, points, width_m):
        _builder().corridor(self, points, width_m)

    def distance_m(self, lat_e5, lon_e5):
        # Return metres to the nearest segment, at most FAR_M.
        # Bounds: the position P has |px|, |py| <= 32000, so |P| <= 45255, and
        # |D| <= 20000, so P . D and P x D are at most 9.06e8. Up to latitude
        # 80 the segment ends lie within 10200 m of the midpoint and 45 m of
        # the line through it along D (the worst of 20000 random 20 km segments:
        # 10015 m and 17 m). So |A x D| <= 1e6, and every position outside the
        # window is more than 31000 - 10200 m > FAR_M away.
        best = FAR_M
        for rows in self._parts:
            for i in range(0, len(rows), ROW):
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
    return _builder().ring_problem(points)


def route_problem(points):
    # Return why a route of [lat, lon] degree pairs is invalid, or None.
    return _builder().route_problem(points)
