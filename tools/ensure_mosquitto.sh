#!/usr/bin/env bash
# Make sure the mosquitto broker used by the end-to-end tests is installed (Debian/Ubuntu).
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_mosquitto: installing mosquitto with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
    exit 0
fi
echo "ensure_mosquitto: mosquitto is missing; install it with: sudo apt-get install mosquitto" >&2
exit 1
