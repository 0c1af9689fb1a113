# Configuration: the device's config.json merged over the defaults and validated as a whole
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# config.json on flash holds only what differs from DEFAULTS (firmware/defaults.py).
# At boot it is merged over the defaults and the result is checked as a whole. A
# bad file or value is reported with its key and reason, and the terminal runs on
# the last good configuration (config.good.json) or, failing that, on the defaults.

from firmware.transient import unload

CONFIG_PATH = "/config.json"
GOOD_PATH = "/config.good.json"

# Keys that are never printed or logged.
SECRET_KEYS = ("mqtt.password", "wifi.password", "remote.key")


class ConfigError(ValueError):
    """A configuration that failed validation; .errors lists (key, reason) pairs."""

    def __init__(self, errors):
        super().__init__("; ".join("%s: %s" % e for e in errors))
        self.errors = errors


def merge(base, patch):
    """Return a copy of base with patch applied; nested dicts are merged key by key."""
    out = {}
    for k in base:
        out[k] = base[k]
    for k in patch:
        v = patch[k]
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def validate(cfg, changed=None):
    """Return a list of (key, reason) for every problem in a merged configuration.

    changed, the dotted keys that differ from a configuration that passed,
    limits the checks to those keys and the rules across keys.
    """
    # The checks take about 8 KB of heap (64-bit unix port), the list checks
    # and the geometry code about 13 KB. Only one of the two is loaded at a
    # time, so that a zone or a route can be validated beside a running trip.
    import gc

    lists = []
    errors = _checks(cfg, changed, lists)
    if lists:
        gc.collect()  # here, not in _checks() (firmware/transient.py)
        _list_checks(lists, errors)
    return errors


def _checks(cfg, changed, lists):
    from firmware import checks

    try:
        return checks.validate(cfg, changed, lists)
    finally:
        checks = None
        unload("firmware.checks")
        unload("firmware.defaults")


def _list_checks(lists, errors):
    from firmware import listchecks

    try:
        for key, v, kind, lo, hi in lists:
            listchecks.check(key, v, kind, lo, hi, errors)
    finally:
        unload("firmware.listchecks")
        unload("firmware.geobuild")


def load(path=CONFIG_PATH, good_path=GOOD_PATH):
    """Load, merge and validate the configuration (firmware.checks.load); returns (config, errors, source)."""
    from firmware import checks

    try:
        return checks.load(path, good_path)
    finally:
        unload("firmware.listchecks")
        unload("firmware.checks")
        unload("firmware.geobuild")
        unload("firmware.defaults")


def compact_points(cfg):
    """Replace the point lists of cfg's zones and route, in place, by flat arrays of doubles.

    Parsed JSON stores each [lat, lon] as a list of two boxed floats, about 140
    bytes per point on the 64-bit unix port. An array("d") of [lat0, lon0,
    lat1, ...] stores it in 16. firmware.remote writes such an array as the same list
    of pairs, so the configuration's text and hash do not change. Only lists of
    [float, float] are packed: a whole number such as 31 stays in a list, since
    the array would give it back as 31.0, another JSON text. The route's dict
    is changed in place, so it must not be firmware.defaults' own: that route
    has no points, and lists without points are left alone.
    """
    # NOTE: called when config.json is loaded (firmware.checks.load) only. A
    # change applied live keeps its lists until the next start, and no two
    # packed arrays are ever compared: == of two "d" arrays is not implemented.
    for z in cfg["zones"]:
        if _floats(z.get("points")):
            z["points"] = _packed(z["points"])
    route = cfg["route"]
    if _floats(route["points"]):
        route["points"] = _packed(route["points"])


def _floats(pts):
    if type(pts) is not list or not pts:
        return False
    for p in pts:
        if type(p) is not list or len(p) != 2 or type(p[0]) is not float or type(p[1]) is not float:
            return False
    return True


def _packed(pts):
    from array import array

    a = array("d", bytes(16 * len(pts)))
    for i, p in enumerate(pts):
        a[2 * i] = p[0]
        a[2 * i + 1] = p[1]
    return a


def points_list(pts):
    """Return zone or route points as a list of [lat, lon], from a list or a packed array (compact_points)."""
    if isinstance(pts, list):
        return pts
    return [[pts[i], pts[i + 1]] for i in range(0, len(pts), 2)]


def redacted(cfg):
    """Return a copy of cfg with secrets replaced by "***", for logs and status output."""
    out = merge(cfg, {})
    for key in SECRET_KEYS:
        sect, leaf = key.split(".")
        if isinstance(out.get(sect), dict) and out[sect].get(leaf):
            out[sect] = merge(out[sect], {leaf: "***"})
    return out
