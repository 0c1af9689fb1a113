# Configuration checks of the list values: probes, geofence zones and the route
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# firmware.checks loads this module only when one of these keys is checked,
# and firmware.config drops it again with the checks. The zone and route
# geometry rules are in firmware.geobuild, loaded from here.

_PROBE_KEYS = ("rom", "name", "low", "high")


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check(key, v, kind, lo, hi, errors):
    """Append (key, reason) to errors for every problem of a "probes", "zones" or "route" value."""
    if kind == "probes":
        _check_probes(key, v, lo, hi, errors)
    elif kind == "zones":
        _check_zones(key, v, hi, errors)
    else:
        _check_points(key, v, 2, hi, errors, "route")


def _check_probes(key, probes, lo, hi, errors):
    if not isinstance(probes, list):
        errors.append((key, "must be a list of probes, got %r" % (probes,)))
        return
    if len(probes) > hi:
        errors.append((key, "at most %d probes, got %d" % (hi, len(probes))))
    if probes:
        # Resident on a terminal with probes; not loaded for an empty list.
        from drivers.ds18b20 import parse_rom, rom_crc_ok
    roms = []
    names = []
    for i, p in enumerate(probes):
        pk = "%s[%d]" % (key, i)
        if not isinstance(p, dict):
            errors.append((pk, "must be an object with rom and name, got %r" % (p,)))
            continue
        for k in p:
            if k not in _PROBE_KEYS:
                errors.append((pk + "." + k, "unknown key"))
        rom = p.get("rom")
        try:
            if not isinstance(rom, str):
                raise ValueError("ROM ID must be a string")
            rb = parse_rom(rom)
            if not rom_crc_ok(rb):
                raise ValueError("CRC byte does not match (typo in the ROM ID?)")
            if rb in roms:
                raise ValueError("ROM ID listed twice")
            roms.append(rb)
        except ValueError as e:
            errors.append((pk + ".rom", "%s, got %r" % (e, rom)))
        name = p.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            errors.append((pk + ".name", "must be a string of 1..32 characters, got %r" % (name,)))
        elif name in names:
            errors.append((pk + ".name", "name %r used twice" % name))
        else:
            names.append(name)
        for lim in ("low", "high"):
            v = p.get(lim)
            if v is not None and (not _is_num(v) or not -55 <= v <= 125):
                errors.append((pk + "." + lim, "must be a number -55..125 or null, got %r" % (v,)))
        low, high = p.get("low"), p.get("high")
        if _is_num(low) and _is_num(high) and not low < high:
            errors.append((pk, "low (%r) must be below high (%r)" % (low, high)))


_ZONE_KEYS = ("name", "type", "lat", "lon", "radius_m", "points", "stop_ok", "door_ok", "alarm")
_ZONE_ALARMS = ("none", "inside", "outside")
# The limit of all polygon and route points together is in firmware.checks.
_POLYGON_POINTS_MAX = 32


def _check_points(key, points, lo, hi, errors, what):
    # A list of [lat, lon] in decimal degrees. The geometry rules are in firmware.geobuild.
    if not isinstance(points, list):
        errors.append((key, "must be a list of [lat, lon] points, got %r" % (points,)))
        return
    if len(points) > hi:
        errors.append((key, "at most %d points, got %d" % (hi, len(points))))
        return
    if not points and what == "route":
        return  # no route
    for i, p in enumerate(points):
        if (not isinstance(p, list) or len(p) != 2 or not _is_num(p[0]) or not _is_num(p[1])
                or not -90 <= p[0] <= 90 or not -180 <= p[1] <= 180):
            errors.append(("%s[%d]" % (key, i), "must be [lat, lon] in degrees (-90..90, -180..180), got %r" % (p,)))
            return
    from firmware import geo

    problem = geo.route_problem(points) if what == "route" else geo.ring_problem(points)
    if problem:
        errors.append((key, problem))


def _check_zones(key, zones, hi, errors):
    if not isinstance(zones, list):
        errors.append((key, "must be a list of zones, got %r" % (zones,)))
        return
    if len(zones) > hi:
        errors.append((key, "at most %d zones, got %d" % (hi, len(zones))))
        return
    names = []
    for i, z in enumerate(zones):
        zk = "%s[%d]" % (key, i)
        if not isinstance(z, dict):
            errors.append((zk, "must be an object with name and type, got %r" % (z,)))
            continue
        for k in z:
            if k not in _ZONE_KEYS:
                errors.append((zk + "." + k, "unknown key"))
        name = z.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            errors.append((zk + ".name", "must be a string of 1..32 characters, got %r" % (name,)))
        elif name in names:
            errors.append((zk + ".name", "name %r used twice" % name))
        else:
            names.append(name)
        for flag in ("stop_ok", "door_ok"):
            if flag in z and not isinstance(z[flag], bool):
                errors.append((zk + "." + flag, "must be true or false, got %r" % (z[flag],)))
        if "alarm" in z and z["alarm"] not in _ZONE_ALARMS:
            errors.append((zk + ".alarm", "must be one of %s, got %r" % ("/".join(_ZONE_ALARMS), z["alarm"])))
        kind = z.get("type")
        if kind == "circle":
            # firmware.geo works up to 80 degrees of latitude.
            for k, lo, hi2 in (("lat", -80, 80), ("lon", -180, 180)):
                v = z.get(k)
                if not _is_num(v) or not lo <= v <= hi2:
                    errors.append((zk + "." + k, "must be a number %d..%d, got %r" % (lo, hi2, v)))
            r = z.get("radius_m")
            if not isinstance(r, int) or isinstance(r, bool) or not 20 <= r <= 20000:
                errors.append((zk + ".radius_m", "must be an integer 20..20000, got %r" % (r,)))
            if "points" in z:
                errors.append((zk + ".points", "a circle has lat, lon and radius_m, not points"))
        elif kind == "polygon":
            pts = z.get("points")
            _check_points(zk + ".points", pts, 4, _POLYGON_POINTS_MAX, errors, "polygon")
            for k in ("lat", "lon", "radius_m"):
                if k in z:
                    errors.append((zk + "." + k, "a polygon has points, not %s" % k))
        else:
            errors.append((zk + ".type", "must be circle or polygon, got %r" % (kind,)))
