#!/bin/sh
# vphone's container entry point (PID 1 is tini, which forwards SIGTERM here; `exec` makes vphone receive it).
#
#   (no arguments) or boot ...       -> vphone boot ...   (options from VPHONE_* variables, see the Dockerfile)
#   -*  (an option, e.g. --once)      -> vphone boot -*...
#   fleet|config|events|... ...      -> vphone fleet|config|events|... ...
#   anything else (sh, ls, ...)      -> run as given
#
# Outside a container (tests, a laptop) set VPHONE_BIN to the vphone binary to run.
set -eu

vphone="${VPHONE_BIN:-vphone}"

if [ "$#" -eq 0 ]; then
    set -- boot
fi
case "$1" in
    -*) set -- boot "$@" ;;
esac

case "$1" in
    boot)
        # The flash's directory must exist (a fresh volume is empty but present; a bind mount may not be).
        if [ -n "${VPHONE_FLASH:-}" ]; then
            mkdir -p "$(dirname "$VPHONE_FLASH")"
        fi
        exec "$vphone" "$@"
        ;;
    fleet | config | events | factory-reset | crypt | flash | report | help)
        exec "$vphone" "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
