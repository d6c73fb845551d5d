# shellcheck shell=bash
#
# bench/lib.sh — helpers shared by bench/run.sh and bench/register.sh.
#
# Design note.  Sourced, never run: it only sets the paths and constants
# below and defines functions; nothing starts until a script calls
# bench_begin.  The state lives in globals, as in the scripts before:
#   T            the temp dir (bench_begin), removed on success unless
#                B2BUA_BENCH_KEEP=1, kept and reported on failure;
#   PIDS         every process the script started, in start order; the
#                EXIT trap stops them newest first (TERM, then KILL);
#   B2B_PID, CHILD_PIDS, WORKER_PIDS, REDIS_PID, REDIS_SOCK, ADDR  set by the helpers.
# Cleanup is by PID only: after the recorded PIDS, a worker that outlived
# its master is killed only if its PID is one we saw and it still runs the
# b2bua binary.  Every wait has a deadline.

top_srcdir=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
B2BUA=$top_builddir/b2bua/b2bua
# shellcheck disable=SC2034  # used by the scripts
CLI=$top_builddir/cli/b2bua-cli
# shellcheck disable=SC2034  # used by the scripts
SIPP_DIR=$top_srcdir/tests/sipp
# shellcheck disable=SC2034  # sipp -buff_size, used by the scripts
BUF=1048576
# shellcheck disable=SC2034  # used by the scripts
CLK_TCK=$(getconf CLK_TCK)

bench_uint() {  # VALUE MIN MAX: VALUE is a decimal integer in [MIN, MAX]
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}

bench_alive() {  # PID: running, not a zombie
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)
	[ "$st" != Z ] && [ "$st" != X ]
}

# shellcheck disable=SC2317  # called from the EXIT trap
bench_stop_pid() {  # PID GRACE
	local pid=$1 n=$((${2:-3} * 20))
	if bench_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		while bench_alive "$pid" && [ "$n" -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
		bench_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
}

# shellcheck disable=SC2317  # the EXIT trap
bench_cleanup() {
	local rc=$? i p exe
	trap - EXIT
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do bench_stop_pid "${PIDS[$i]}" 5; done
	exe=$(readlink -f "$B2BUA")
	for p in "${CHILD_PIDS[@]}"; do
		[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && kill -KILL "$p" 2>/dev/null
	done
	if [ "$rc" -ne 0 ] || [ "${B2BUA_BENCH_KEEP:-0}" = 1 ]; then
		echo "kept $T" >&2
		[ "$rc" -ne 0 ] && tail -n 20 "$T/b2bua.log" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}

bench_begin() {  # NAME: the temp dir $T (NAME.XXXXXX) and the cleanup traps
	T=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
	REDIS_SOCK=$T/redis.sock
	PIDS=()
	B2B_PID=
	REDIS_PID=
	WORKER_PIDS=()
	CHILD_PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 1' INT TERM HUP
}

bench_udp_bound() {  # ADDR:PORT: some process has a UDP socket bound there
	ss -Huan | awk '{print $4}' | grep -qx "$1"
}

bench_pick_addr() {  # OCTET: ADDR = a 127.OCTET.x.1 nobody has a UDP socket on
	local n a
	ADDR=
	for ((n = 0; n < 200; n++)); do
		a="127.$1.$((($$ + n) % 250 + 1)).1"
		if ! ss -Huan | awk '{print $4}' | grep -q "^$a:"; then ADDR=$a; break; fi
	done
	[ -n "$ADDR" ] || { echo "no free loopback address" >&2; exit 1; }
}

bench_rcli() {  # ARGS...: redis-cli against the private redis-server, bounded
	timeout 30 redis-cli -s "$REDIS_SOCK" "$@"
}

# A private redis-server on $REDIS_SOCK, in $T, no persistence.  Returns 1,
# with the reason on stderr, if it exits or does not answer within 5 s.
bench_redis_start() {
	local deadline
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 --save "" \
		--appendonly no --daemonize no --dir "$T" >"$T/redis.log" 2>&1 &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	deadline=$((SECONDS + 5))
	until [ "$(bench_rcli ping 2>/dev/null)" = PONG ]; do
		bench_alive "$REDIS_PID" ||
			{ echo "redis-server exited during start-up" >&2; return 1; }
		[ "$SECONDS" -lt "$deadline" ] ||
			{ echo "redis-server not ready in 5 s" >&2; return 1; }
		sleep 0.05
	done
}

# bench_call_config RATE WORKERS [LINES]: $T/b2bua.conf for the call benches
# (run.sh, overload.sh): the caller on $ADDR is a trunk, trusted (no
# challenge, no per-source rate limit); numbers starting with 1 go to the
# callee on $ADDR:5080; the table holds 4 s of calls at RATE; CDRs go to
# the private redis-server.  LINES are added as they are.
bench_call_config() {
	cat >"$T/b2bua.conf" <<EOF
node_id = "bench";
redis_address = "unix:$REDIS_SOCK";
cdr_spool_dir = "$T/spool";
workers = $2;
drain_timeout = 5;
listen = "$ADDR";
sip_port = 5060;
worker_port_base = 5070;
call_capacity = $(($1 * 4 + 1024));
cli_socket = "$T/cli.sock";
log_level = "warn";
routes = ( { prefix = "1"; target = "sip:$ADDR:5080;transport=udp"; } );
trusted = ( "$ADDR" );
${3:-}
EOF
}

bench_workers_bound() {  # WORKERS: every worker's port 5070 + i on $ADDR is bound
	local p
	for ((p = 0; p < $1; p++)); do
		bench_udp_bound "$ADDR:$((5070 + p))" || return 1
	done
}

# WORKERS [READY...]: start b2bua on $T/b2bua.conf (log in $T/b2bua.log).
# It logs at warn, so readiness is seen from outside: every worker port
# bound, then the command READY... if given; at most 10 s.  Then
# CHILD_PIDS = its children, WORKER_PIDS = the workers among them, which
# must be WORKERS.  Exits 1 on
# failure.
bench_b2bua_start() {
	local workers=$1 deadline
	shift
	"$B2BUA" -c "$T/b2bua.conf" >"$T/b2bua.log" 2>&1 &
	B2B_PID=$!
	PIDS+=("$B2B_PID")
	deadline=$((SECONDS + 10))
	until bench_workers_bound "$workers" && { [ $# -eq 0 ] || "$@"; }; do
		bench_alive "$B2B_PID" || { echo "b2bua exited during start-up" >&2; exit 1; }
		[ "$SECONDS" -lt "$deadline" ] || { echo "b2bua not ready in 10 s" >&2; exit 1; }
		sleep 0.05
	done
	# Workers name themselves b2bua-wN; the master's other child is b2bua-mgmt.
	mapfile -t CHILD_PIDS < <(pgrep -P "$B2B_PID")
	mapfile -t WORKER_PIDS < <(pgrep -P "$B2B_PID" '^b2bua-w[0-9]+$')
	[ "${#WORKER_PIDS[@]}" -eq "$workers" ] ||
		{ echo "expected $workers workers, found ${#WORKER_PIDS[@]}" >&2; exit 1; }
}

bench_cpu_ticks() {  # PID...: utime + stime (clock ticks) of these processes
	local p sum=0 f
	for p in "$@"; do
		f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		# after "pid (comm) ", utime and stime are fields 12 and 13
		sum=$((sum + $(echo "$f" | awk '{print $12 + $13}')))
	done
	echo "$sum"
}

bench_sipp_stat() {  # FILE COLUMN: last value of a sipp -trace_stat column
	awk -F';' -v col="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		{ last = $c }
		END { print (c && last != "" ? last : 0) }' "$1" 2>/dev/null || echo 0
}

bench_pct() {  # P: the P-th percentile of $T/rtt.txt (nearest rank)
	awk -v p="$1" '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR
		print v[r] }' "$T/rtt.txt"
}

bench_per() {  # MS N: MS milliseconds of CPU per N, in microseconds
	awk -v c="$1" -v n="$2" 'BEGIN { printf "%.1f", n ? c * 1000 / n : 0 }'
}
