#!/usr/bin/env bash
# quickstart.sh — set up and start b2bua on this machine with the sample config.
#
#   scripts/quickstart.sh          install packages if missing, build, start
#                                  a private redis-server, create the sample
#                                  subscribers alice, bob and carol (their
#                                  passwords are printed), start b2bua
#   scripts/quickstart.sh stop     stop what it started (by the PIDs it recorded)
#   scripts/quickstart.sh status   show workers and calls
#
# Everything it creates lives in ./run/ (config, sockets, logs, PID files,
# CDR spool).  The config is etc/b2bua.conf with the CLI socket, the Redis
# socket and the spool moved into ./run/.  To use a Redis of your own, set
# REDIS_ADDRESS (e.g. REDIS_ADDRESS=127.0.0.1:6379): then none is started.
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
	stop_pid redis-server "$RUN/redis.pid"
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

# A private redis-server on a Unix socket, unless one was named.
if [ -z "${REDIS_ADDRESS:-}" ]; then
	stop_pid redis-server "$RUN/redis.pid"
	REDIS_ADDRESS="unix:$RUN/redis.sock"
	redis-server --port 0 --unixsocket "$RUN/redis.sock" --unixsocketperm 700 \
		--dir "$RUN" --save 60 1 --daemonize no >>"$RUN/redis.log" 2>&1 &
	echo $! > "$RUN/redis.pid"
	for _ in $(seq 1 50); do
		[ "$(redis-cli -s "$RUN/redis.sock" ping 2>/dev/null)" = PONG ] && break
		sleep 0.1
	done
fi

sed -e "s|^cli_socket = .*|cli_socket = \"$SOCK\";|" \
    -e "s|^cdr_spool_dir = .*|cdr_spool_dir = \"$RUN/spool\";|" \
    -e "s|^redis_address = .*|redis_address = \"$REDIS_ADDRESS\";|" \
    "$TOP/etc/b2bua.conf" > "$CONF"
"$TOP/b2bua/b2bua" -t -c "$CONF" >/dev/null

nohup "$TOP/b2bua/b2bua" -c "$CONF" >>"$RUN/b2bua.log" 2>&1 &
echo $! > "$RUN/b2bua.pid"
for _ in $(seq 1 50); do
	"$CLI" -s "$SOCK" show workers >/dev/null 2>&1 && break
	kill -0 "$(cat "$RUN/b2bua.pid")" 2>/dev/null || { tail -20 "$RUN/b2bua.log"; exit 1; }
	sleep 0.1
done

# Sample subscribers, each with a fresh random password.
echo "subscribers of domain 127.0.0.1 (register to 127.0.0.1:5060, UDP):"
for user in alice bob carol; do
	"$CLI" -s "$SOCK" user del "$user" >/dev/null 2>&1 || true
	"$CLI" -s "$SOCK" user add "$user" --display "${user^}" | sed 's/^/  /'
done

cat <<MSG
b2bua is running (pid $(cat "$RUN/b2bua.pid")): SIP on udp 127.0.0.1:5060, log $RUN/b2bua.log
  config:   $CONF
  redis:    $REDIS_ADDRESS
  CLI:      $CLI -s $SOCK show workers | show calls | show stats | cdr tail [--json]
  users:    $CLI -s $SOCK user add|passwd|del|show|list|forward ...
  stop:     $0 stop
MSG
