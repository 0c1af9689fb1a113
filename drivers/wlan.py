# WiFi station wrapper for the ESP32: start connecting, then report whether the link is up
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# Nothing here waits: connect() only starts the association, and the ESP32
# WiFi driver keeps retrying on its own (without limit by default). The uplink
# polls is_up() before it opens an MQTT connection.


class WLAN:
    def __init__(self, network, ssid, password):
        # network is the `network` module, passed in so tests can supply a fake.
        self._sta = network.WLAN(network.STA_IF)
        self.ssid = ssid
        self._password = password

    def connect(self):
        """Start associating with the access point and return at once."""
        self._sta.active(True)
        self._sta.connect(self.ssid, self._password)

    def is_up(self):
        """Return True while the station is associated and has an IP address."""
        return self._sta.isconnected()

    def status(self):
        """Return the driver's status code (1010 = got IP, 201 = no AP found, 202 = wrong password)."""
        return self._sta.status()

    def disconnect(self):
        self._sta.disconnect()


def create(cfg):
    """Return a WLAN for cfg["wifi"] that has started connecting, or None.

    None means "no WiFi to manage": on a port without the network module (the
    unix port) or when no SSID is configured. The uplink then treats the link
    as always up.
    """
    ssid = cfg["wifi"]["ssid"]
    if not ssid:
        return None
    try:
        import network
    except ImportError:
        return None
    wlan = WLAN(network, ssid, cfg["wifi"]["password"])
    wlan.connect()
    return wlan
