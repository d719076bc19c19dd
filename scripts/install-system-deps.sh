#!/bin/sh
# Installs the system packages spillover needs that pip cannot provide: HAProxy 2.6+
# (the local gateway), iptables (the metrics-outage drill blocks Triton's metrics
# ports with it), the openssl CLI (the gateway TLS test makes its CAs and certificates
# with it) and Prometheus with promtool (the chart's alert rules are checked and
# unit-tested with promtool) and shellcheck (the private cluster's bootstrap scripts are checked
# with it). Runs apt-get only when something is missing and we are root;
# otherwise says how.
set -eu

haproxy_ok() {
    bin=$(command -v haproxy 2>/dev/null || ls /usr/sbin/haproxy 2>/dev/null || true)
    [ -n "$bin" ] || return 1
    version=$("$bin" -v 2>/dev/null | sed -n 's/^HAProxy version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    set -- $version
    [ "${1:-0}" -gt 2 ] || { [ "${1:-0}" -eq 2 ] && [ "${2:-0}" -ge 6 ]; }
}

iptables_ok() {
    command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ]
}

openssl_ok() {
    command -v openssl >/dev/null 2>&1
}

prometheus_ok() {
    { command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; } &&
        { command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ]; }
}

shellcheck_ok() {
    command -v shellcheck >/dev/null 2>&1
}

missing=""
haproxy_ok || missing="haproxy"
iptables_ok || missing="$missing iptables"
openssl_ok || missing="$missing openssl"
prometheus_ok || missing="$missing prometheus"
shellcheck_ok || missing="$missing shellcheck"
[ -n "$missing" ] || if ! shellcheck_ok; then
    echo "note: shellcheck is not installed; only the bootstrap scripts' lint test needs it" >&2
fi
exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing$missing with apt-get ..."
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086 # one word per package
    # No recommends: Debian's prometheus would pull in node-exporter, a daemon nothing here uses.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! haproxy_ok; then
    cat >&2 <<'MSG'
spillover needs HAProxy 2.6 or newer for its local gateway, and it is not installed.
  Debian/Ubuntu:  sudo apt-get install haproxy
  elsewhere:      install haproxy 2.6+ and put it on PATH
MSG
    exit 1
fi
if ! prometheus_ok; then
    echo "note: prometheus/promtool are not installed; only the chart's alert-rule tests need them" >&2
fi
if ! iptables_ok; then
    echo "note: iptables is not installed; only the metrics-outage drill needs it" >&2
fi
if ! openssl_ok; then
    echo "note: openssl is not installed; only the gateway's burst TLS test needs it" >&2
fi
if ! shellcheck_ok; then
    echo "note: shellcheck is not installed; only the bootstrap scripts' lint test needs it" >&2
fi
exit 0
