#!/bin/sh
# The container's HEALTHCHECK: GET /healthz of the phone's control API (200 "ok" while the phone runs on a readable
# flash). Healthy by definition when the API is off (VPHONE_HTTP_PORT empty, e.g. `vphone fleet`).
set -eu
port="${VPHONE_HTTP_PORT:-}"
[ -n "$port" ] || exit 0
case "${VPHONE_HTTP_BIND:-127.0.0.1}" in
    0.0.0.0 | "" | 127.0.0.1 | localhost) host=127.0.0.1 ;;
    :: | ::1 | "[::]" | "[::1]") host="[::1]" ;;
    *:*) host="[${VPHONE_HTTP_BIND}]" ;;
    *) host="$VPHONE_HTTP_BIND" ;;
esac
exec curl --fail --silent --show-error --max-time 2 "http://${host}:${port}/healthz"
