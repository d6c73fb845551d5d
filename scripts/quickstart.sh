#!/usr/bin/env bash
# quickstart.sh — set up and start b2bua on this machine with the sample config.
#
#   scripts/quickstart.sh          install packages if missing, build, start
#   scripts/quickstart.sh stop     stop what it started (by the PIDs it recorded)
#   scripts/quickstart.sh status   show workers and calls
#
# Everything it creates lives in ./run/ (config, CLI socket, logs, PID files).
# The config is etc/b2bua.conf with the CLI socket moved into ./run/, so no
# root-owned directory is needed beyond the package install.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
RUN="$TOP/run"
CONF="$RUN/b2bua.conf"
SOCK="$RUN/b2bua.sock"
CLI="$TOP/cli/b2bua-cli"

stop_pid() {   # stop_pid NAME PIDFILE
	local pid
	[ -f "$2" ] || return 0
	pid=$(cat "$2")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		echo "quickstart: stopped $1 (pid $pid)"
	fi
	rm -f "$2"
}

case "${1:-start}" in
stop)
	stop_pid b2bua "$RUN/b2bua.pid"
	exit 0 ;;
status)
	"$CLI" -s "$SOCK" show workers && "$CLI" -s "$SOCK" show calls
	exit $? ;;
start) ;;
*)
	echo "usage: $0 [start|stop|status]" >&2
	exit 2 ;;
esac

"$TOP/scripts/deps.sh"
"$TOP/scripts/build.sh"
mkdir -p "$RUN"
stop_pid b2bua "$RUN/b2bua.pid"

sed -e "s|^cli_socket = .*|cli_socket = \"$SOCK\";|" \
    -e "s|^cdr_spool_dir = .*|cdr_spool_dir = \"$RUN/spool\";|" \
    -e "s|^redis_address = .*|redis_address = \"unix:$RUN/redis.sock\";|" \
    "$TOP/etc/b2bua.conf" > "$CONF"
"$TOP/b2bua/b2bua" -t -c "$CONF" >/dev/null

nohup "$TOP/b2bua/b2bua" -c "$CONF" >>"$RUN/b2bua.log" 2>&1 &
echo $! > "$RUN/b2bua.pid"
for _ in $(seq 1 50); do
	"$CLI" -s "$SOCK" show workers >/dev/null 2>&1 && break
	kill -0 "$(cat "$RUN/b2bua.pid")" 2>/dev/null || { tail -20 "$RUN/b2bua.log"; exit 1; }
	sleep 0.1
done

cat <<MSG
b2bua is running (pid $(cat "$RUN/b2bua.pid")): SIP on udp 127.0.0.1:5060, log $RUN/b2bua.log
  config:   $CONF
  CLI:      $CLI -s $SOCK show workers | show calls | show stats [--json]
  stop:     $0 stop
MSG
