# Tests of firmware.geo: fix conversion, circle, polygon, corridor, validation, zero allocation
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Expected positions and distances were computed in CPython 3.11 on a sphere of
# radius 6371008.8 m, independently of firmware.geo: points at a bearing and
# distance with the spherical destination formula, distances with haversine,
# and distances to a segment with the great-circle cross-track and along-track
# formulas (the distance to the nearer end when the along-track position is
# outside the segment). All positions are e5 ints (degrees x 10^5, rounded).

import micropython

from firmware import geo, geobuild
from firmware.geo import FAR_M, Circle, Corridor, Polygon, deg_e5, fix_e5, ring_problem, route_problem


def close(got, expected, tolerance):
    return abs(got - expected) <= tolerance


def test_fix_e5_values():
    # 31 deg 12.3456789 min = 31 + 12.3456789 / 60 = 31.2057613 deg.
    assert fix_e5(31, 123456789, False) == 3120576
    # 33 deg 52.0 min S = -(33 + 52 / 60) = -33.8666667 deg.
    assert fix_e5(33, 520000000, True) == -3386667
    # 121 deg 59.9999999 min W = -(121 + 0.999999998) deg, which rounds to -122.
    assert fix_e5(121, 599999999, True) == -12200000
    # 59.99994 min = 0.999999 deg = 99999.9 e5 units, rounds up.
    assert fix_e5(7, 599999400, False) == 800000
    # 59.99990 min = 0.9999983 deg = 99999.83 e5 units, rounds up.
    assert fix_e5(7, 599999000, False) == 800000
    # 59.99960 min = 0.9999933 deg = 99999.33 e5 units, rounds down.
    assert fix_e5(7, 599996000, False) == 799999
    assert fix_e5(180, 0, True) == -18000000
    assert fix_e5(0, 0, True) == 0


def test_fix_e5_rounds_half_away_from_zero():
    # min_e7 = 3000 is 0.0003 min = 0.5 e5 units.
    assert fix_e5(0, 3000, False) == 1
    assert fix_e5(0, 3000, True) == -1
    assert fix_e5(0, 2999, False) == 0
    assert fix_e5(0, 2999, True) == 0
    # min_e7 = 9000 is 1.5 units, min_e7 = 8999 is 1.4998 units.
    assert fix_e5(45, 9000, True) == -4500002
    assert fix_e5(45, 8999, True) == -4500001


def test_deg_e5_values():
    assert deg_e5(31.2) == 3120000
    assert deg_e5(-121.4) == -12140000
    assert deg_e5(0.000006) == 1
    assert deg_e5(-0.000006) == -1
    assert deg_e5(-0.000004) == 0
    assert deg_e5(179.99999) == 17999999


# Circle centres with points 480 m and 520 m from the centre to the north, east,
# south and west (destination formula, haversine distance of the rounded
# points within 1.5 m of 480 and 520).
_CIRCLES = (
    ((0, 0), (432, 0), (468, 0), (0, 432), (0, 468), (-432, 0), (-468, 0), (0, -432), (0, -468)),
    (
        (3120000, 12140000),
        (3120432, 12140000), (3120468, 12140000), (3120000, 12140505), (3120000, 12140547),
        (3119568, 12140000), (3119532, 12140000), (3120000, 12139495), (3120000, 12139453),
    ),
    (
        (6000000, 2500000),
        (6000432, 2500000), (6000468, 2500000), (6000000, 2500863), (6000000, 2500935),
        (5999568, 2500000), (5999532, 2500000), (6000000, 2499137), (6000000, 2499065),
    ),
    (
        (-3345000, -7066000),
        (-3344568, -7066000), (-3344532, -7066000), (-3345000, -7065483), (-3345000, -7065440),
        (-3345432, -7066000), (-3345468, -7066000), (-3345000, -7066517), (-3345000, -7066560),
    ),
    (
        (6000000, 17990000),
        (6000432, 17990000), (6000468, 17990000), (6000000, 17990863), (6000000, 17990935),
        (5999568, 17990000), (5999532, 17990000), (6000000, 17989137), (6000000, 17989065),
    ),
)


def test_circle_either_side_of_radius():
    for case in _CIRCLES:
        centre = case[0]
        c = Circle(centre[0], centre[1], 500)
        for k in range(1, 9, 2):
            near, far = case[k], case[k + 1]
            assert c.contains(near[0], near[1]), (centre, near, "480 m away")
            assert not c.contains(far[0], far[1]), (centre, far, "520 m away")
        assert c.contains(centre[0], centre[1])


def test_circle_20_km_diagonals_at_lat_60():
    # 19990 m and 20010 m from (60, 25) at bearings 45, 135, 225 and 315 deg.
    # A plain equirectangular projection with the centre's cosine errs by
    # about 19 m here, so this checks the mean-latitude correction.
    c = Circle(6000000, 2500000, 20000)
    inside = ((6012687, 2525522), (5987264, 2525326), (5987264, 2474674), (6012687, 2474478))
    outside = ((6012700, 2525548), (5987251, 2525352), (5987251, 2474648), (6012700, 2474452))
    for p in inside:
        assert c.contains(p[0], p[1]), p
    for p in outside:
        assert not c.contains(p[0], p[1]), p


def test_circle_near_projection_window():
    # 31.9 km and 32.1 km north of (31.2, 121.4): inside and outside the
    # 32 km projection window, outside the 20 km circle either way.
    c = Circle(3120000, 12140000, 20000)
    assert not c.contains(3148688, 12140000)
    assert not c.contains(3148868, 12140000)
    # 100 km east and the antipode's longitude.
    assert not c.contains(3120000, 12245000)
    assert not c.contains(3120000, -5860000)


def test_circle_rejects_bad_radius():
    for radius in (0, 20001, -5):
        try:
            Circle(3120000, 12140000, radius)
            raised = False
        except ValueError as e:
            raised = True
            assert str(radius) in str(e), str(e)
        assert raised, radius
    assert Circle(3120000, 12140000, 499.6).radius_m == 500


_SQUARE = [(3120000, 12140000), (3120000, 12141000), (3121000, 12141000), (3121000, 12140000), (3120000, 12140000)]

# U opening north: 0.03 deg square at (31.20, 121.40) with a notch from lon
# 121.41 to 121.42 down to lat 31.21.
_U = [
    (3120000, 12140000),
    (3120000, 12143000),
    (3123000, 12143000),
    (3123000, 12142000),
    (3121000, 12142000),
    (3121000, 12141000),
    (3123000, 12141000),
    (3123000, 12140000),
    (3120000, 12140000),
]


def test_polygon_square():
    sq = Polygon(_SQUARE)
    assert sq.contains(3120500, 12140500)
    assert not sq.contains(3121500, 12140500)
    assert not sq.contains(3120500, 12139500)
    assert not sq.contains(3120500, 12141500)
    assert not sq.contains(3119500, 12140500)
    # 2 e5 units (2.2 m) either side of the south edge.
    assert sq.contains(3120002, 12140500)
    assert not sq.contains(3119998, 12140500)
    # 2 e5 units (1.9 m at this latitude) either side of the east edge.
    assert sq.contains(3120500, 12140998)
    assert not sq.contains(3120500, 12141002)


def test_polygon_concave_notch_is_outside():
    u = Polygon(_U)
    assert not u.contains(3122000, 12141500), "inside the notch"
    assert not u.contains(3121020, 12141500), "22 m into the notch"
    assert u.contains(3120980, 12141500), "22 m below the notch"
    assert u.contains(3122000, 12140500), "west arm"
    assert u.contains(3122000, 12142500), "east arm"
    assert u.contains(3120500, 12141500), "base"
    assert not u.contains(3124000, 12141500), "north of the notch"


def test_polygon_ray_through_vertices():
    # At lat 31.21 a ray to the east passes through the two notch vertices.
    u = Polygon(_U)
    assert u.contains(3121000, 12140500), "west arm at the notch floor latitude"
    assert not u.contains(3121000, 12139500), "west of the U"
    assert not u.contains(3121000, 12143500), "east of the U"
    assert u.contains(3121000, 12142500), "east arm at the notch floor latitude"


# Arrowheads (concave, slanted edges): tip, west base corner, notch, east base
# corner. Each case contains points 5 m inside and 5 m outside the middle of
# edges 0 to 3, measured along the normal of the edge's initial bearing.
_ARROWS = (
    (
        [(3125000, 12145000), (3120000, 12140000), (3122000, 12145000), (3120000, 12150000), (3125000, 12145000)],
        ((3122497, 12142504), (3121004, 12142498), (3121004, 12147502), (3122497, 12147496)),
        ((3122503, 12142496), (3120996, 12142502), (3120996, 12147498), (3122503, 12147504)),
    ),
    (
        [(6005000, 2505000), (6000000, 2500000), (6002000, 2505000), (6000000, 2510000), (6005000, 2505000)],
        ((6002498, 2502508), (6001004, 2502494), (6001004, 2507506), (6002498, 2507492)),
        ((6002502, 2502492), (6000996, 2502506), (6000996, 2507494), (6002502, 2507508)),
    ),
)


def test_polygon_slanted_edges():
    for ring, inside, outside in _ARROWS:
        poly = Polygon(ring)
        for edge in range(4):
            p = inside[edge]
            assert poly.contains(p[0], p[1]), (ring[0], edge, p, "5 m inside")
            p = outside[edge]
            assert not poly.contains(p[0], p[1]), (ring[0], edge, p, "5 m outside")


def test_polygon_arrowhead_notch_is_outside():
    # Below the notch (0.02 deg above the base) between the wings: outside.
    poly = Polygon(_ARROWS[0][0])
    assert not poly.contains(3121000, 12145000)
    assert not poly.contains(3120500, 12145000)
    assert poly.contains(3123000, 12145000), "between notch and tip"
    assert poly.contains(3120500, 12141000), "west wing"
    assert poly.contains(3120500, 12149000), "east wing"
    assert not poly.contains(3124000, 12142000), "north-west of the west wing"


# First point (60, 179.9), then points 19.9 km west, north-west and north of it.
_RING_60_179 = [(6000000, 17990000), (5999952, 17954207), (6012630, 17964593), (6017896, 17990000), (6000000, 17990000)]


def test_polygon_big_coordinates_near_extent():
    poly = Polygon(_RING_60_179)
    assert poly.contains(6012503, 17964848), "200 m inside the north-west point, 19.7 km from the first"
    assert not poly.contains(6012757, 17964338), "200 m beyond the north-west point, 20.1 km away"
    assert poly.contains(6006353, 17977257), "10 km north-west of the first"
    assert not poly.contains(5999936, 17990127), "100 m south-east of the first"
    assert not poly.contains(6022182, 17945185), "35 km north-west, outside the window"
    assert not poly.contains(6010000, -17990000), "across the 180th meridian"


# Route near Shanghai: segment lengths 4389 m, 2224 m and 3061 m (haversine).
_ROUTE = [(3120000, 12140000), (3123000, 12143000), (3125000, 12143000), (3126000, 12146000)]

# Position and cross-track or end-point distance in metres.
_ROUTE_CASES = (
    ((3121500, 12141800), 217.0),
    ((3121000, 12142000), 723.0),
    ((3124000, 12142500), 475.4),
    ((3124000, 12144000), 950.7),
    ((3125500, 12144000), 172.6),
    ((3127000, 12147000), 1462.8),  # beyond the end: distance to the last point
    ((3119000, 12139000), 1463.3),  # before the start: distance to the first point
    ((3123300, 12143300), 285.2),  # outside the corner at the second point
    ((3120000, 12160000), 14889.8),
)


def test_corridor_distance_against_cross_track():
    route = Corridor(_ROUTE, 300)
    for p, expected in _ROUTE_CASES:
        got = route.distance_m(p[0], p[1])
        assert close(got, expected, max(2, expected / 100)), (p, got, expected)
    assert route.distance_m(3150000, 12143000) == FAR_M, "26.8 km away"
    assert route.distance_m(3120000, 12140000) == 0
    assert route.distance_m(3123000, 12143000) == 0


def test_long_route_in_parts_equals_its_segments():
    # A 64-point zigzag: its rows fill 8 arrays. The distance must be the
    # smallest distance to any of its segments, each measured as a route of
    # its own, and no array may need a block larger than 8 rows.
    pts = [(3120000 + 900 * i, 12140000 + 600 * (i % 3)) for i in range(64)]
    route = Corridor(pts, 300)
    assert [len(part) for part in route._parts] == [88] * 7 + [77]
    segments = [Corridor(pts[i : i + 2], 300) for i in range(63)]
    for lat in range(3119000, 3180000, 2300):
        for lon in range(12137000, 12145000, 1700):
            expected = min(s.distance_m(lat, lon) for s in segments)
            assert route.distance_m(lat, lon) == expected, (lat, lon)
    micropython.heap_lock()
    try:
        d = route.distance_m(3150000, 12141000)
    finally:
        micropython.heap_unlock()
    assert d == min(s.distance_m(3150000, 12141000) for s in segments)


def test_corridor_inside_uses_width():
    route = Corridor(_ROUTE, 300)
    assert route.inside(3121500, 12141800), "217 m away"
    assert not route.inside(3124000, 12142500), "475 m away"
    assert route.inside(3123300, 12143300), "285 m away"
    assert not Corridor(_ROUTE, 280).inside(3123300, 12143300)
    assert route.width_m == 300


def test_corridor_20_km_segment_near_window():
    # (45, 7) to 19990 m north; its midpoint is 9995 m north of the start.
    route = Corridor([(4500000, 700000), (4517977, 700000)], 100)
    cases = (
        ((4535514, 700000), 19500.3),  # 19.5 km beyond the end, 29.5 km from the midpoint
        ((4535873, 700000), 19899.5),  # 19.9 km beyond the end
        ((4530618, 717993), 19900.4),  # 19.9 km north-east of the end
        ((4508961, 725349), 19899.9),  # 19.9 km east of the midpoint
        ((4508961, 674651), 19899.9),  # 19.9 km west of the midpoint
        ((4490453, 686533), 15000.1),  # 15 km south-west of the start
    )
    for p, expected in cases:
        got = route.distance_m(p[0], p[1])
        assert close(got, expected, expected / 100), (p, got, expected)
    assert route.distance_m(4508959, 726113) == FAR_M, "20.5 km east of the midpoint"
    assert route.distance_m(4536863, 700000) == FAR_M, "21 km beyond the end, 31 km from the midpoint"
    assert route.distance_m(4538217, 700000) == FAR_M, "32.5 km from the midpoint, outside the window"
    assert route.distance_m(-4500000, 700000) == FAR_M


def test_corridor_short_segment():
    # (31.2, 121.4) to (31.20001, 121.40001) is 1.46 m long. Positions 500 m
    # and 5000 m from its middle at right angles to it.
    route = Corridor([(3120000, 12140000), (3120001, 12140001)], 100)
    got = route.distance_m(3119708, 12140400)
    assert close(got, 500.2, 2), got
    got = route.distance_m(3117077, 12143994)
    assert close(got, 4999.9, 50), got


def test_corridor_44_m_segment():
    # (31.2, 121.4) to (31.2003, 121.4003) is 43.9 m long. Positions 1000 m
    # from its middle on either side, at right angles to it.
    route = Corridor([(3120000, 12140000), (3120030, 12140030)], 100)
    got = route.distance_m(3119430, 12140814)
    assert close(got, 1000.3, 10), got
    got = route.distance_m(3120600, 12139216)
    assert close(got, 1000.3, 10), got


def test_corridor_20_km_diagonal_near_ends():
    # A 19.9 km segment at 45 deg from (60, 25). Positions at 2% and 98% of
    # the way, interpolated linearly in e5 units, lie on the segment. Near its
    # middle the projection bends the segment by up to 5 m, within the
    # accuracy stated in firmware.geo.
    route = Corridor([(6000000, 2500000), (6012630, 2525407)], 100)
    for p in ((6000000, 2500000), (6000253, 2500508), (6012377, 2524899), (6012630, 2525407)):
        got = route.distance_m(p[0], p[1])
        assert got <= 2, (p, got)
    got = route.distance_m(6006315, 2512704)
    assert got <= 6, got


def test_corridor_big_coordinates():
    # (60, 179.8) -> (60.05, 179.95) -> (60.1, 179.99): 10018 m and 5986 m.
    route = Corridor([(6000000, 17980000), (6005000, 17995000), (6010000, 17999000)], 500)
    cases = (
        ((6003000, 17986000), 921.3),
        ((6008000, 17999000), 824.9),
        ((6010000, 17999900), 498.9),  # beyond the end
    )
    for p, expected in cases:
        got = route.distance_m(p[0], p[1])
        assert close(got, expected, max(2, expected / 100)), (p, got, expected)
    # 1108.6 m from the end by haversine, but across the 180th meridian,
    # which the module does not support.
    assert route.distance_m(6010000, -17999000) == FAR_M


def test_shape_across_180th_meridian_named():
    reason = route_problem([[44.0, 179.99], [44.0, -179.99]])
    assert reason == ("points 0 [44.0, 179.99] and 1 [44.0, -179.99] are on both sides of the 180th meridian,"
                      " which is not supported: split the shape there"), reason
    reason = ring_problem([[-16.8, 179.9], [-16.7, 179.95], [-16.75, -179.95], [-16.8, 179.9]])
    assert reason.startswith("points 1 [-16.7, 179.95] and 2 [-16.75, -179.95] are on both sides"), reason
    # Up to 180 degrees apart is not a crossing: such a segment is only too long.
    reason = route_problem([[10.0, -89.0], [10.0, 90.0]])
    assert reason.startswith("segment 0 is "), reason


def test_ring_problem_point_count_and_closure():
    assert ring_problem([[31.2, 121.4], [31.3, 121.4], [31.2, 121.4]]) == "ring needs at least 4 points, got 3"
    reason = ring_problem([[31.2, 121.4], [31.3, 121.4], [31.3, 121.5], [31.3, 121.5]])
    assert reason == "ring is not closed: first [31.2, 121.4] != last [31.3, 121.5]", reason
    reason = ring_problem([[-33.45, -70.66], [-33.4, -70.66], [-33.4, -70.6], [-33.45, -70.6]])
    assert reason == "ring is not closed: first [-33.45, -70.66] != last [-33.45, -70.6]", reason
    assert ring_problem([[31.2, 121.4], [31.3, 121.4], [31.3, 121.5], [31.2, 121.4]]) is None


def test_ring_problem_distinct_points():
    reason = ring_problem([[31.2, 121.4], [31.3, 121.4], [31.2, 121.4], [31.3, 121.4], [31.2, 121.4]])
    assert reason == "ring needs at least 3 distinct points, got 2", reason
    # A repeated point is allowed when 3 others are distinct.
    assert ring_problem([[31.2, 121.4], [31.3, 121.4], [31.3, 121.4], [31.3, 121.5], [31.2, 121.4]]) is None


def _number_before(text, word):
    # Return the int just before " " + word in text.
    words = text.split()
    return int(words[words.index(word) - 1])


def test_ring_problem_extent():
    # (31.2, 121.4) to (31.45, 121.4) is 27799 m and to (31.7, 121.4) 55598 m
    # (haversine). The second point is outside the projection window.
    reason = ring_problem([[31.2, 121.4], [31.3, 121.4], [31.3, 121.5], [31.45, 121.4], [31.2, 121.4]])
    assert reason.startswith("point 3 is "), reason
    assert close(_number_before(reason, "m"), 27799, 28), reason
    assert reason.endswith("from point 0 (limit 20000)"), reason
    reason = ring_problem([[31.2, 121.4], [31.7, 121.4], [31.3, 121.5], [31.2, 121.4]])
    assert reason.startswith("point 1 is "), reason
    assert close(_number_before(reason, "m"), 55598, 56), reason
    # (31.2, 121.4) to (31.37, 121.4) is 18903 m.
    assert ring_problem([[31.2, 121.4], [31.37, 121.4], [31.3, 121.5], [31.2, 121.4]]) is None


def test_ring_problem_zero_area():
    reason = ring_problem([[31.2, 121.4], [31.21, 121.41], [31.22, 121.42], [31.2, 121.4]])
    assert reason.startswith("ring has zero area"), reason
    reason = ring_problem([[31.2, 121.4], [31.2, 121.42], [31.2, 121.41], [31.2, 121.4]])
    assert reason.startswith("ring has zero area"), reason
    assert ring_problem([[31.2, 121.4], [31.21, 121.41], [31.22, 121.4201], [31.2, 121.4]]) is None


def test_ring_problem_crossing_edges():
    # Edge 0 runs from (31.20, 121.40) to (31.22, 121.42) and edge 2 from
    # (31.22, 121.40) to (31.20, 121.43): they cross at lat 31.21.
    ring = [[31.2, 121.4], [31.22, 121.42], [31.22, 121.4], [31.2, 121.43], [31.2, 121.4]]
    assert ring_problem(ring) == "edges 0 and 2 cross"
    # A bowtie with equal lobes: its signed area is 0, and the crossing is reported.
    ring = [[31.2, 121.4], [31.22, 121.42], [31.22, 121.4], [31.2, 121.42], [31.2, 121.4]]
    assert ring_problem(ring) == "edges 0 and 2 cross"
    # Two lobes that meet where edge 0 ends and edge 3 ends, at (31.22, 121.42).
    ring = [
        [31.2, 121.4], [31.22, 121.42], [31.2, 121.44], [31.24, 121.44], [31.22, 121.42], [31.24, 121.4], [31.2, 121.4]
    ]
    assert ring_problem(ring) == "edges 0 and 3 touch"
    # Edge 1 runs back along edge 0.
    ring = [[31.2, 121.4], [31.2, 121.44], [31.2, 121.42], [31.23, 121.42], [31.2, 121.4]]
    assert ring_problem(ring) == "edges 0 and 1 overlap"
    assert ring_problem([[p[0] / 100000, p[1] / 100000] for p in _U]) is None


def test_ring_problem_touching_edges():
    # In the first ring, edge 2 ends at (31.20, 121.42) in the middle of edge 0.
    # In the second ring, edge 0 starts there, in the middle of edge 2.
    ring = [[31.2, 121.4], [31.2, 121.44], [31.24, 121.44], [31.2, 121.42], [31.24, 121.4], [31.2, 121.4]]
    assert ring_problem(ring) == "edges 0 and 2 touch"
    ring = [[31.2, 121.42], [31.24, 121.4], [31.2, 121.4], [31.2, 121.44], [31.24, 121.44], [31.2, 121.42]]
    assert ring_problem(ring) == "edges 0 and 2 touch"


def test_ring_problem_latitude_limit():
    reason = ring_problem([[80.1, 10.0], [80.1, 10.1], [80.0, 10.1], [80.1, 10.0]])
    assert reason == "point 0 [80.1, 10.0] is beyond latitude +-80, which is not supported", reason
    assert ring_problem([[-79.9, 10.0], [-79.9, 10.1], [-79.95, 10.1], [-79.9, 10.0]]) is None


def test_polygon_constructor_raises_reason():
    try:
        Polygon(_SQUARE[:-1])
        reason = None
    except ValueError as e:
        reason = str(e)
    assert reason == "ring is not closed: first [31.2, 121.4] != last [31.21, 121.4]", reason


def test_route_problem_rules():
    assert route_problem([[31.2, 121.4]]) == "route needs at least 2 points, got 1"
    reason = route_problem([[31.2, 121.4], [31.21, 121.41], [31.21, 121.41]])
    assert reason == "points 1 and 2 are equal: [31.21, 121.41]", reason
    assert route_problem([[31.2, 121.4], [31.21, 121.41], [31.2, 121.4]]) is None
    # (31.2, 121.4) to (31.4, 121.4) is 22239 m, to (31.7, 121.4) 55598 m (haversine).
    reason = route_problem([[31.1, 121.4], [31.2, 121.4], [31.4, 121.4]])
    assert reason.startswith("segment 1 is "), reason
    assert close(_number_before(reason, "m"), 22239, 22), reason
    assert reason.endswith("long (limit 20000)"), reason
    reason = route_problem([[31.2, 121.4], [31.7, 121.4]])
    assert reason.startswith("segment 0 is "), reason
    assert close(_number_before(reason, "m"), 55598, 56), reason
    # (31.2, 121.4) to (31.37, 121.4) is 18903 m.
    assert route_problem([[31.2, 121.4], [31.37, 121.4]]) is None
    assert route_problem([[80.2, 10.0], [80.0, 10.0]]).startswith("point 0 [80.2, 10.0] is beyond latitude")


def test_corridor_rejects_bad_width():
    for width in (0, 20000):
        try:
            Corridor(_ROUTE, width)
            raised = False
        except ValueError as e:
            raised = True
            assert str(width) in str(e), str(e)
        assert raised, width


def test_length_rounds_to_metres():
    # Pythagorean triples, and sqrt(2) = 1.41, sqrt(13) = 3.61, sqrt(98) = 9.90,
    # 14000 * sqrt(2) = 19798.99, 14142 * sqrt(2) = 19999.91, rounded half up.
    cases = (
        ((0, 0), 0), ((3, 4), 5), ((-5, 12), 13), ((3000, -4000), 5000), ((1, 1), 1), ((2, 3), 4),
        ((7, 7), 10), ((14000, 14000), 19799), ((14142, 14142), FAR_M), ((12000, 16000), FAR_M),
        ((20001, 0), FAR_M), ((0, -30000), FAR_M),
    )
    for (ex, ey), expected in cases:
        assert geo._length_m(ex, ey) == expected, (ex, ey, geo._length_m(ex, ey))


def test_projection_window_bounds():
    # At the window's edges x and y stay within 32000 m, so the products
    # dlat * 36436 and dlon * q (x and y times 32768) stay below
    # 32000.5 * 32768 = 1048592384 < 2**30. One unit further is outside.
    xy = geo._XY
    for lat_e5 in (0, 3120000, 6000000, 8000000, -8000000):
        q, k, window_lon = geobuild._scales(lat_e5)
        w = 28778  # 1048576000 // 36436
        for dlat, dlon in ((w, window_lon), (w, -window_lon), (-w, window_lon), (-w, -window_lon)):
            assert geo._project(dlat, dlon, q, k, window_lon)
            assert abs(xy[0]) <= 32000, (lat_e5, dlat, xy[0])
            assert abs(xy[1]) <= 32000, (lat_e5, dlat, xy[1])
            # At least 31000 m east or west even at latitude 80.
            assert abs(xy[0]) >= 31000, (lat_e5, dlat, xy[0])
            assert not geo._project(dlat + (1 if dlat > 0 else -1), dlon, q, k, window_lon)
            assert not geo._project(dlat, dlon + (1 if dlon > 0 else -1), q, k, window_lon)


def test_heap_lock_detects_allocation():
    # Without this the tests below could pass on a port whose heap_lock()
    # does nothing.
    micropython.heap_lock()
    try:
        bytearray(8)
        allocated = True
    except MemoryError:
        allocated = False
    micropython.heap_unlock()
    assert not allocated


def test_evaluation_allocates_nothing():
    circles = [Circle(case[0][0], case[0][1], 500) for case in _CIRCLES]
    circles.append(Circle(6000000, 2500000, 20000))
    polygons = (Polygon(_SQUARE), Polygon(_U))
    routes = (Corridor(_ROUTE, 300), Corridor([(4500000, 700000), (4517977, 700000)], 100))
    # Positions of every case above, near and far, inside and outside windows.
    positions = [p for case in _CIRCLES for p in case]
    positions += [p for p, _ in _ROUTE_CASES]
    positions += [(4535514, 700000), (4508961, 725349), (4538217, 700000), (4536863, 700000)]
    positions += [(3121000, 12140500), (3121020, 12141500), (3150000, 12143000), (6010000, -17999000)]
    positions += [(-9000000, -18000000), (9000000, 18000000)]
    positions = tuple(positions)
    results = [0] * 4
    errors = 0

    micropython.heap_lock()
    try:
        for p in positions:
            lat = p[0]
            lon = p[1]
            for c in circles:
                if c.contains(lat, lon):
                    results[0] += 1
            for poly in polygons:
                if poly.contains(lat, lon):
                    results[1] += 1
            for route in routes:
                results[2] += route.distance_m(lat, lon)
                if route.inside(lat, lon):
                    results[3] += 1
        for min_e7 in range(0, 600000000, 7000001):
            results[0] += fix_e5(179, min_e7, True) - fix_e5(179, min_e7, False)
    except MemoryError:
        errors += 1
    finally:
        micropython.heap_unlock()
    assert errors == 0
    # Some positions were inside a polygon and inside a corridor.
    assert results[1] > 0
    assert results[3] > 0


def test_evaluation_at_big_coordinates_allocates_nothing():
    circle = Circle(6000000, 17990000, 500)
    route = Corridor([(6000000, 17980000), (6005000, 17995000), (6010000, 17999000)], 500)
    poly = Polygon(_RING_60_179)
    got = [0, 0, 0]
    micropython.heap_lock()
    try:
        got[0] = circle.contains(6000432, 17990000)
        got[1] = route.distance_m(6008000, 17999000)
        got[2] = poly.contains(6012503, 17964848)
    finally:
        micropython.heap_unlock()
    assert got[0] is True
    assert close(got[1], 824.9, 8), got[1]
    assert got[2] is True


def test_limits_are_20_km():
    assert geo.FAR_M == 20000
    assert geo.MAX_EXTENT_M == 20000
    assert geo.MAX_SEGMENT_M == 20000
