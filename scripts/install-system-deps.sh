#!/bin/sh
# Installs the system packages spillover needs that pip cannot provide: HAProxy 2.6+.
# Runs apt-get only when something is missing and we are root; otherwise says how.
set -eu

haproxy_ok() {
    bin=$(command -v haproxy 2>/dev/null || ls /usr/sbin/haproxy 2>/dev/null || true)
    [ -n "$bin" ] || return 1
    version=$("$bin" -v 2>/dev/null | sed -n 's/^HAProxy version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    set -- $version
    [ "${1:-0}" -gt 2 ] || { [ "${1:-0}" -eq 2 ] && [ "${2:-0}" -ge 6 ]; }
}

if haproxy_ok; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing haproxy with apt-get ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    haproxy_ok && exit 0
fi
cat >&2 <<'MSG'
spillover needs HAProxy 2.6 or newer for its local gateway, and it is not installed.
  Debian/Ubuntu:  sudo apt-get install haproxy
  elsewhere:      install haproxy 2.6+ and put it on PATH
MSG
exit 1
