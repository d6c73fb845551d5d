# shellcheck shell=bash
#
# lib.sh — the end-to-end harness, sourced by every tests/e2e/*.sh.
#
# Design note.  Each test is one bash script that plays real SIP through the
# real daemon: sipp UAC → b2bua → sipp UAS, all on loopback.  The harness
# gives every test
#   - a temp dir ($T) for the config, the daemon's log and every sipp trace;
#   - a loopback address of its own ($ADDR, 127.x.y.z from the test's name
#     and PID), so fixed ports can be used and tests run in parallel under
#     `make -j2 check` without colliding;
#   - a config writer, a daemon starter that waits (bounded) for every
#     "worker N ready:" line, sipp runners that always trace the messages
#     each peer saw (-trace_msg), its statistics and unexpected messages;
#   - assertions over those traces, the daemon's CLI (JSON through jq) and
#     its log;
#   - an EXIT trap that stops exactly the processes it started (by PID,
#     never by name) and removes $T, or keeps it and prints the logs when
#     the test failed.
# Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 hard error.

# Bash is required (arrays, /dev/udp); make check may run tests with sh.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi

set -u

TEST_NAME=$(basename "$0" .sh)
_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$_here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
B2BUA=$top_builddir/b2bua/b2bua
CLI=$top_builddir/cli/b2bua-cli
SIPP_DIR=$top_srcdir/tests/sipp

# Ports on $ADDR (the address is the test's own, so these never collide).
SIP_PORT=5060           # the daemon's public port (SO_REUSEPORT, all workers)
WORKER_PORT_BASE=5070   # worker i binds 5070 + i
UAS_PORT=5080           # the callee (sipp UAS); route prefix "1" goes here
_UAC_PORT_NEXT=5100     # each sipp UAC gets the next port from here
SIPP_TIMEOUT=${SIPP_TIMEOUT:-60}   # seconds any one sipp may run

# ------------------------------------------------------------ reporting

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$TEST_NAME" "$*" >&2; }
_FAIL_MSG=
fail() { _FAIL_MSG=$*; log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }
hard_error() { log "ERROR: $*"; exit 99; }

# ------------------------------------------------------------ prerequisites

command -v sipp >/dev/null 2>&1 ||
	skip "sipp not found (Debian package sip-tester: apt-get install sip-tester)"
command -v jq >/dev/null 2>&1 ||
	skip "jq not found (Debian package jq: apt-get install jq)"
[ -x "$B2BUA" ] || hard_error "$B2BUA not built (run make first)"
[ -x "$CLI" ] || hard_error "$CLI not built (run make first)"

T=$(mktemp -d "${TMPDIR:-/tmp}/b2bua-e2e-$TEST_NAME.XXXXXX") ||
	hard_error "mktemp -d failed"

# ------------------------------------------------------------ process tracking

_PIDS=()          # every process this test started, in start order
B2B_PID=          # the daemon's master
_B2B_CHILDREN=()  # worker pids seen, so they are stopped even if the master is gone
declare -A SIPP_PID=()  # sipp run name → pid (of the `timeout` wrapping it)

declare -A _REAPED=()    # pids already waited for: never signalled again (reuse)

_track() { _PIDS+=("$1"); }

# Alive and not a zombie: a child we have not reaped yet still passes kill -0.
alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_gone PID SECONDS: poll until PID is gone; 0 if it went in time.
wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while alive "$pid"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
	return 0
}

# Stop one process: SIGTERM, a bounded wait, then SIGKILL; reap it if ours.
_stop() {
	local pid=$1 grace=${2:-3}
	[ -z "${_REAPED[$pid]:-}" ] || return 0
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		if ! wait_gone "$pid" "$grace"; then
			# timeout(1), which wraps every sipp, passes TERM on to its
			# command but cannot pass KILL: kill its children first, while
			# they are still its (and so ours), or they outlive the test.
			for k in $(pgrep -P "$pid" 2>/dev/null); do
				kill -KILL "$k" 2>/dev/null
			done
			kill -KILL "$pid" 2>/dev/null
		fi
		wait_gone "$pid" 2 || true
	fi
	wait "$pid" 2>/dev/null || true
	_REAPED[$pid]=1
}

_remember_workers() {
	local p
	# Not once the master was reaped: its pid may belong to another process.
	[ -n "$B2B_PID" ] && [ -z "${_REAPED[$B2B_PID]:-}" ] || return 0
	for p in $(pgrep -P "$B2B_PID" 2>/dev/null); do
		_B2B_CHILDREN+=("$p")
	done
}

_dump_failure() {
	local f lines
	if [ -s "$T/b2bua.log" ]; then
		echo "----- b2bua.log (last 60 lines)" >&2
		tail -n 60 "$T/b2bua.log" >&2
	fi
	# sipp: unexpected messages, and what it said apart from its screens.
	for f in "$T"/*.err "$T"/*.out; do
		[ -s "$f" ] || continue
		lines=$(grep -v '^[[:space:]-]' "$f" | grep -v '^$' | tail -n 12)
		[ -n "$lines" ] || continue
		echo "----- $(basename "$f")" >&2
		printf '%s\n' "$lines" >&2
	done
	log "test failed${_FAIL_MSG:+: $_FAIL_MSG}"
	log "kept $T"
}

_cleanup() {
	local rc=$? i p
	trap - EXIT
	_remember_workers
	# Newest first: sipp runs before the daemon they talk to.
	for ((i = ${#_PIDS[@]} - 1; i >= 0; i--)); do
		_stop "${_PIDS[$i]}" 3
	done
	# Workers are the master's children, not ours: normally gone with it.
	# A leftover is killed only while it still runs our b2bua binary (its
	# pid may have been reused since).
	for p in "${_B2B_CHILDREN[@]}"; do
		if alive "$p" && [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$B2BUA")" ]; then
			log "worker pid $p outlived the master: killing it"
			kill -KILL "$p" 2>/dev/null
		fi
	done
	# A daemon built with --enable-sanitizers reports into its log: any
	# report fails the test, whatever the test itself concluded.
	if [ "$rc" -eq 0 ] && grep -qsE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$T"/b2bua*.log; then
		_FAIL_MSG="sanitizer report in the daemon's log"
		log "FAIL: $_FAIL_MSG"
		grep -hE -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/b2bua*.log | head -60 >&2
		rc=1
	fi
	if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
		rm -rf "$T"
	else
		_dump_failure
	fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 1' INT TERM HUP

# ------------------------------------------------------------ the test's address

# 127.A.B.C: A.B from the test's name, C from its PID; moved on while some
# UDP socket is already bound to it (another run of the same test).
_pick_addr() {
	local h a b c n
	h=$(printf %s "$TEST_NAME" | cksum | cut -d' ' -f1)
	a=$((h % 250 + 2))
	b=$((h / 250 % 256))
	c=$(($$ % 250 + 2))
	for ((n = 0; n < 250; n++)); do
		ADDR="127.$a.$b.$c"
		if ! ss -Huan 2>/dev/null | awk '{print $4}' | grep -q "^$ADDR:"; then
			return 0
		fi
		c=$(((c - 2 + 1) % 250 + 2))
	done
	hard_error "no free loopback address 127.$a.$b.*"
}
ADDR=${B2BUA_E2E_ADDR:-}
[ -n "$ADDR" ] || _pick_addr
CLI_SOCK=$T/cli.sock

# ------------------------------------------------------------ config

# Knobs a test may change before write_config.
CFG_WORKERS=2
CFG_DRAIN_TIMEOUT=3
CFG_CALL_CAPACITY=4096
CFG_INVITE_TIMEOUT=32
CFG_MAX_FORWARDS=70
CFG_LOG_LEVEL=info
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$ADDR:$UAS_PORT;transport=udp\"; }"
CFG_EXTRA=""            # more config lines, e.g. from registrar_config
# trusted sources, written as `trusted = ( $CFG_TRUSTED );` when not empty:
# the test's own address, so its sipp callers may use the static routes
# (an untrusted INVITE never reaches a route).  registrar_config empties it:
# registrar tests say themselves whether their callers are trusted.
CFG_TRUSTED="\"$ADDR\""
CONF=$T/b2bua.conf

# write_config: $CONF from the CFG_* knobs.
write_config() {
	cat >"$CONF" <<EOF
# written by tests/e2e/lib.sh for $TEST_NAME
node_id = "e2e-${TEST_NAME//_/-}";
workers = $CFG_WORKERS;
drain_timeout = $CFG_DRAIN_TIMEOUT;
listen = "$ADDR";
sip_port = $SIP_PORT;
worker_port_base = $WORKER_PORT_BASE;
max_forwards = $CFG_MAX_FORWARDS;
invite_timeout = $CFG_INVITE_TIMEOUT;
call_capacity = $CFG_CALL_CAPACITY;
cli_socket = "$CLI_SOCK";
log_level = "$CFG_LOG_LEVEL";
cdr_spool_dir = "$T/spool";
redis_address = "unix:$T/redis.sock";
routes = ( $CFG_ROUTES );
${CFG_TRUSTED:+trusted = ( $CFG_TRUSTED );}
$CFG_EXTRA
EOF
}

# ------------------------------------------------------------ redis

# redis_start: a private redis-server on a Unix socket in $T (no TCP port,
# no persistence); sets REDIS_SOCK.  rcli runs redis-cli against it.
redis_start() {
	local deadline
	command -v redis-server >/dev/null 2>&1 ||
		skip "redis-server not found (Debian package redis-server)"
	REDIS_SOCK=$T/redis.sock
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
		--save "" --appendonly no --daemonize no --dir "$T" >"$T/redis.log" 2>&1 &
	REDIS_PID=$!
	_track "$REDIS_PID"
	deadline=$((SECONDS + 5))
	until [ "$(rcli ping 2>/dev/null)" = PONG ]; do
		alive "$REDIS_PID" || fail "redis-server exited during start-up"
		[ "$SECONDS" -lt "$deadline" ] || fail "redis-server not ready within 5 s"
		sleep 0.05
	done
}
rcli() { redis-cli -s "$REDIS_SOCK" "$@"; }

# redis_up: every worker of the current run has logged its Redis connection
# (before that, lookups and CDRs would fail).  Use as `wait_for 5 redis_up`.
redis_up() { [ "$(grep -c 'redis unix:.*: connected' "$T/b2bua.log")" -ge "$CFG_WORKERS" ]; }

# registrar_config [LINES]: serve domain $ADDR from the private Redis
# (write_config always points redis_address at $T/redis.sock).
# sipp 3.6 cannot skip a SHA-256 challenge, so sipp-driven tests offer MD5
# only (also the default); a test that wants SHA-256 passes its own
# auth_algorithms line, e.g. "auth_algorithms = [ \"SHA-256\", \"MD5\" ];".
registrar_config() {
	CFG_TRUSTED=""
	CFG_EXTRA="domain = \"$ADDR\";
auth_secret = \"e2e-secret-0123456789\";
${1:-auth_algorithms = [ \"MD5\" ];}"
}

# ------------------------------------------------------------ the daemon

# Number of distinct workers that logged "worker N ready:".
_ready_workers() {
	grep -o 'worker [0-9][0-9]* ready:' "$T/b2bua.log" 2>/dev/null | sort -u | wc -l
}

# b2b_start: start the daemon on $CONF (written if absent) and wait up to
# 10 s for all workers to be ready and the CLI socket to exist.
b2b_start() {
	local deadline
	[ -f "$CONF" ] || write_config
	# A test may start the daemon more than once: keep the earlier logs.
	if [ -s "$T/b2bua.log" ]; then
		_B2B_RUNS=$((${_B2B_RUNS:-0} + 1))
		mv "$T/b2bua.log" "$T/b2bua.$_B2B_RUNS.log"
	fi
	: >"$T/b2bua.log"
	"$B2BUA" -c "$CONF" >>"$T/b2bua.log" 2>&1 &
	B2B_PID=$!
	_track "$B2B_PID"
	deadline=$((SECONDS + 10))
	while [ "$(_ready_workers)" -lt "$CFG_WORKERS" ] || [ ! -S "$CLI_SOCK" ]; do
		alive "$B2B_PID" || fail "b2bua exited during start-up"
		[ "$SECONDS" -lt "$deadline" ] ||
			fail "b2bua not ready within 10 s ($(_ready_workers)/$CFG_WORKERS workers)"
		sleep 0.05
	done
	_remember_workers
	log "b2bua pid $B2B_PID ready on $ADDR:$SIP_PORT ($CFG_WORKERS workers)"
}

# b2b_stop [SECONDS]: SIGTERM the master, wait for it (bounded) and return
# its exit status; 124 when it had to be killed.
b2b_stop() {
	local grace=${1:-10} rc
	_remember_workers
	kill -TERM "$B2B_PID" 2>/dev/null
	if wait_gone "$B2B_PID" "$grace"; then
		wait "$B2B_PID"
		rc=$?
	else
		kill -KILL "$B2B_PID" 2>/dev/null
		wait "$B2B_PID" 2>/dev/null
		rc=124
	fi
	_REAPED[$B2B_PID]=1
	return "$rc"
}

# cli ARGS...: b2bua-cli on this daemon's socket, bounded.
cli() { timeout 5 "$CLI" -s "$CLI_SOCK" "$@"; }

# ------------------------------------------------------------ subscribers
#
# Tests create and change subscribers the way an operator does, through
# b2bua-cli, so that the Redis schema lives in the daemon only.  These need
# the daemon running (b2b_start) with a domain (registrar_config).

# add_user NAME PASSWORD [--display T] [--max-calls N] [--always T]
#          [--busy T] [--no-answer T] [--timeout S]: `user add`, then
# `user forward` when a forwarding option is given; fails the test when
# either is refused.
add_user() {
	local name=$1 pw=$2 add=() fwd=() out
	shift 2
	while [ $# -gt 0 ]; do
		[ $# -ge 2 ] || hard_error "add_user $name: $1 needs a value"
		case $1 in
		--display | --max-calls) add+=("$1" "$2") ;;
		--always | --busy | --no-answer | --timeout) fwd+=("$1" "$2") ;;
		*) hard_error "add_user $name: unknown option '$1'" ;;
		esac
		shift 2
	done
	out=$(cli user add "$name" --password "$pw" "${add[@]}" 2>&1) ||
		fail "b2bua-cli user add $name exited $?: $out"
	[ "$out" = "user $name added" ] || fail "b2bua-cli user add $name printed: '$out'"
	log "$out"
	[ ${#fwd[@]} -eq 0 ] || user_forward "$name" "${fwd[@]}"
}

# user_forward NAME OPTIONS...: `user forward NAME OPTIONS...` (--always T,
# --busy T, --no-answer T, --timeout S or --clear); fails the test when it
# is refused.
user_forward() {
	local name=$1 out
	shift
	out=$(cli user forward "$name" "$@" 2>&1) ||
		fail "b2bua-cli user forward $name $* exited $?: $out"
	log "$out"
}

# cli_json WHAT JQ-FILTER: run `show WHAT --json` and apply a jq filter.
# `show workers` and `show calls` answer arrays; accept an object wrapping
# them too ({"workers": [...]}) so the filter always sees the array.
cli_json() {
	local what=$1 filter=$2 out
	out=$(cli show "$what" --json) || fail "b2bua-cli show $what --json failed"
	printf '%s' "$out" | jq -r --arg w "$what" \
		"(if type == \"object\" and has(\$w) then .[\$w] else . end) | $filter" ||
		fail "show $what --json: not JSON or filter failed: $out"
}

# b2b_log_grep ERE: the daemon's log matches.
b2b_log_has() { grep -Eq -- "$1" "$T/b2bua.log"; }

# worker_counter INDEX FIELD: one field of worker INDEX in `show workers
# --json` (e.g. pid, calls_created, msgs_in, handed_out); prints it and returns 0,
# or says which field is missing and returns 1 (use: v=$(worker_counter 0
# calls_created) || fail ...).
worker_counter() {
	local v
	v=$(cli_json workers ".[] | select(.index == $1) | .$2 // \"missing\"")
	case $v in
	'' | *[!0-9]*)
		log "show workers --json: worker $1 has no numeric \"$2\" ($v): $(cli show workers --json | tr -d '\n')"
		return 1 ;;
	esac
	echo "$v"
}

# calls_empty: the call table lists no call (use: wait_for 5 calls_empty).
calls_empty() { [ "$(cli_json calls 'length')" = 0 ]; }

# udp_options_ok [PORT]: an OPTIONS over UDP to $ADDR:PORT (default the
# public port) gets its 200 within 2 s: the worker's loop is not stalled.
# Sent to a worker's own port, its 200 also says that the worker has
# handled every datagram that port received before it.
udp_options_ok() {
	python3 - "$ADDR" "${1:-$SIP_PORT}" <<'PY'
import random, socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 0))
s.settimeout(2)
me = s.getsockname()[1]
tag = random.randrange(1 << 30)
msg = (f"OPTIONS sip:{addr}:{port} SIP/2.0\r\n"
       f"Via: SIP/2.0/UDP {addr}:{me};branch=z9hG4bK-udp-{tag}\r\n"
       f"Max-Forwards: 70\r\nFrom: <sip:probe@{addr}>;tag={tag}\r\nTo: <sip:{addr}>\r\n"
       f"Call-ID: udp-{tag}@{addr}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
s.sendto(msg.encode(), (addr, port))
try:
    data = s.recv(65535)
except socket.timeout:
    sys.exit(1)
sys.exit(0 if data.startswith(b"SIP/2.0 200") else 1)
PY
}

# ------------------------------------------------------------ sipp

# _sipp_common NAME: the options every sipp run gets.  Each run NAME leaves
#   $T/NAME.msg  every message sent and received (-trace_msg)
#   $T/NAME.csv  statistics (-trace_stat), $T/NAME.err unexpected messages,
#   $T/NAME.out  its screen output.
_sipp_common() {
	local name=$1
	# The control socket on $ADDR too; sipp picks its port from 8888 up
	# (an explicit -cp fails when another sipp holds it on 0.0.0.0).
	_SIPP_ARGS=(-nostdin -ci "$ADDR"
		-trace_msg -message_file "$T/$name.msg"
		-trace_stat -stf "$T/$name.csv" -fd 1
		-trace_err -error_file "$T/$name.err"
		-timeout "${SIPP_TIMEOUT}s" -timeout_error)
}

# uas_start NAME SCENARIO [SIPP ARGS...]: a sipp UAS on $ADDR:$UAS_PORT in
# the background (pass -m N; pass -p to use another port).
uas_start() {
	local name=$1 scen=$2
	shift 2
	_sipp_common "$name"
	(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/$scen.xml" \
		-i "$ADDR" -p "$UAS_PORT" "${_SIPP_ARGS[@]}" "$@") >"$T/$name.out" 2>&1 &
	SIPP_PID[$name]=$!
	_track "$!"
	# sipp binds at once; give it a moment so the first INVITE finds it.
	_wait_udp_bound "$ADDR" "$(_port_arg "$UAS_PORT" "$@")" || fail "sipp $name did not bind"
}

# uac_launch NAME SCENARIO SOURCE TARGET [SIPP ARGS...]: a sipp UAC bound
# to address SOURCE, on a port of its own (sipp would otherwise try 5060
# and up), towards TARGET ("host:port", sipp's remote host: the Request-URI
# and To name it unless -rsa sends the datagrams elsewhere), in the
# background; callee user 1000 unless -s is given.  Every UAC starter
# below is this with its SOURCE and TARGET.
uac_launch() {
	local name=$1 scen=$2 src=$3 target=$4
	shift 4
	_sipp_common "$name"
	_UAC_PORT_NEXT=$((_UAC_PORT_NEXT + 1))
	(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/$scen.xml" \
		-i "$src" -p "$_UAC_PORT_NEXT" -s 1000 "${_SIPP_ARGS[@]}" "$@" \
		"$target") \
		>"$T/$name.out" 2>&1 &
	SIPP_PID[$name]=$!
	_track "$!"
}

# uac_start NAME SCENARIO [SIPP ARGS...]: a sipp UAC towards the daemon's
# public port in the background; callee user 1000 unless -s is given.
uac_start() {
	local name=$1 scen=$2
	shift 2
	uac_launch "$name" "$scen" "$ADDR" "$ADDR:$SIP_PORT" "$@"
}

# uac_start_from SOURCE NAME SCENARIO [SIPP ARGS...]: uac_start, but the
# sipp UAC binds address SOURCE (another loopback address than $ADDR, i.e.
# a source that is not trusted; see other_addr).
uac_start_from() {
	local src=$1 name=$2 scen=$3
	shift 3
	uac_launch "$name" "$scen" "$src" "$ADDR:$SIP_PORT" "$@"
}

# other_addr N: a loopback address beside $ADDR (N = 1, 2, ...) for peers
# that must not be the trusted $ADDR.
other_addr() {
	local last=${ADDR##*.}
	echo "${ADDR%.*}.$(((last - 2 + $1) % 250 + 2))"
}

# uri_host ADDR: ADDR as the host of a URI or of sipp's remote host: an
# IPv6 address in brackets ([::1]), anything else as it is.
uri_host() { case $1 in *:*) echo "[$1]" ;; *) echo "$1" ;; esac; }

# uas_start_at ADDR NAME SCENARIO [SIPP ARGS...]: uas_start on address ADDR
# (IPv4 or IPv6, e.g. ::1) instead of $ADDR, port $UAS_PORT unless -p is
# given; with -t t1 it listens on TCP, and the wait is for that listener.
uas_start_at() {
	local at=$1 name=$2 scen=$3 port bound
	shift 3
	_sipp_common "$name"
	(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/$scen.xml" \
		-i "$at" -p "$UAS_PORT" "${_SIPP_ARGS[@]}" "$@") >"$T/$name.out" 2>&1 &
	SIPP_PID[$name]=$!
	_track "$!"
	port=$(_port_arg "$UAS_PORT" "$@")
	bound="$(uri_host "$at"):$port"
	wait_for 5 _bound_at "$bound" || fail "sipp $name did not bind $bound"
}
# _bound_at HOST:PORT: a UDP socket or a TCP listener is bound there.
_bound_at() { { ss -Huan; ss -Htln; } 2>/dev/null | awk '{print $4}' | grep -qxF "$1"; }

# sipp_wait NAME: wait for a sipp run to end; returns its exit status
# (0: every call succeeded).
sipp_wait() {
	local rc
	wait "${SIPP_PID[$1]}"
	rc=$?
	_REAPED[${SIPP_PID[$1]}]=1
	return "$rc"
}

# uac_run NAME SCENARIO [ARGS...]: uac_start then sipp_wait; fails the test
# unless sipp exits 0.
uac_run() {
	local name=$1 rc
	uac_start "$@"
	sipp_wait "$name"
	rc=$?
	[ "$rc" -eq 0 ] || fail "sipp $name exited $rc ($(sipp_stat "$name" 'FailedCall(C)') failed calls)"
}

# uas_wait NAME: wait for a UAS and fail the test unless it exited 0.
uas_wait() {
	local rc
	sipp_wait "$1"
	rc=$?
	[ "$rc" -eq 0 ] || fail "sipp $1 exited $rc ($(sipp_stat "$1" 'FailedCall(C)') failed calls)"
}

_port_arg() {
	local port=$1
	shift
	while [ $# -gt 0 ]; do
		[ "$1" = -p ] && [ $# -ge 2 ] && port=$2
		shift
	done
	echo "$port"
}

_wait_udp_bound() {
	local deadline=$((SECONDS + 5))
	until ss -Huan 2>/dev/null | awk '{print $4}' | grep -qx "$1:$2"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# sipp_stat NAME COLUMN: the last value of a -trace_stat column, e.g.
# 'SuccessfulCall(C)', 'FailedCall(C)', 'Retransmissions(C)'.
sipp_stat() {
	local f=$T/$1.csv
	[ -s "$f" ] || { echo "?"; return; }
	awk -F';' -v col="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		{ last = $c }
		END { print (c ? last : "?") }' "$f"
}

# msg_list LOG: one line per distinct message in a sipp message log:
#   DIR KEY CSEQ-METHOD CALL-ID
# DIR is sent|recv, KEY the method of a request or the code of a response.
# Retransmissions (same direction, start line, Call-ID, CSeq and top Via
# branch) are listed once.
msg_list() {
	awk '
	function flush(id) {
		if (inmsg && key != "") {
			id = dir SUBSEP key SUBSEP cseqn SUBSEP cseqm SUBSEP callid SUBSEP branch
			if (!(id in seen)) { seen[id] = 1; print dir, key, cseqm, callid }
		}
		inmsg = 0; inhdr = 0; key = ""; cseqn = ""; cseqm = ""; callid = ""; branch = ""
	}
	/^-----------------------------------------------/ { flush(); next }
	/^[A-Z]+ message sent/ { flush(); dir = "sent"; inmsg = 1; next }
	/^[A-Z]+ message received/ { flush(); dir = "recv"; inmsg = 1; next }
	!inmsg { next }
	{ sub(/\r$/, "") }
	key == "" { if (NF > 0) { key = ($1 == "SIP/2.0") ? $2 : $1; inhdr = 1 } next }
	inhdr && NF == 0 { inhdr = 0; next }
	!inhdr { next }
	{ name = tolower($1) }
	name == "cseq:" { cseqn = $2; cseqm = $3 }
	name == "call-id:" || name == "i:" { callid = $2 }
	(name == "via:" || name == "v:") && branch == "" {
		if (match($0, /branch=[^;, ]+/)) branch = substr($0, RSTART + 7, RLENGTH - 7)
	}
	END { flush() }' "$1"
}

# msg_count LOG DIR WHAT: how many distinct messages DIR (sent|recv|any) of
# WHAT: a method ("INVITE"), a code ("486") or a code and the method of its
# CSeq ("200/BYE").
msg_count() {
	local log=$1 dir=$2 what=$3
	[ -f "$log" ] || { echo 0; return; }
	msg_list "$log" | awk -v dir="$dir" -v what="$what" '
		BEGIN { n = split(what, w, "/") }
		(dir == "any" || $1 == dir) && $2 == w[1] && (n < 2 || $3 == w[2]) { c++ }
		END { print c + 0 }'
}

# msg_calls LOG DIR KEY: how many calls (distinct Call-IDs) in LOG had a
# message KEY (method or code) DIR (sent|recv), whatever the retransmissions.
msg_calls() {
	[ -f "$1" ] || { echo 0; return; }
	msg_list "$1" | awk -v dir="$2" -v key="$3" '$1 == dir && $2 == key { print $4 }' |
		sort -u | wc -l
}

# msg_header LOG DIR KEY HEADER: the value of HEADER (e.g. "To") in every
# message DIR (sent|recv) whose KEY (method or code) matches, one a line.
msg_header() {
	awk -v dir="$2" -v want="$3" -v hdr="$(printf %s "$4" | tr '[:upper:]' '[:lower:]'):" '
	/^-----------------------------------------------/ { inmsg = 0; next }
	/^[A-Z]+ message sent/ { d = "sent"; inmsg = 1; key = ""; next }
	/^[A-Z]+ message received/ { d = "recv"; inmsg = 1; key = ""; next }
	!inmsg { next }
	{ sub(/\r$/, "") }
	key == "" { if (NF > 0) key = ($1 == "SIP/2.0") ? $2 : $1; next }
	NF == 0 { inmsg = 0; next }
	d == dir && key == want && tolower($1) == hdr { sub(/^[^:]*: */, ""); print }
	' "$1"
}

# msg_top_vias LOG METHOD: the distinct sent-by ("host:port", ":5060" when
# the Via names no port) of the top Via of every METHOD received: the
# address the request was sent from.
msg_top_vias() {
	awk -v want="$2" '
	/^-----------------------------------------------/ { inmsg = 0; next }
	/^[A-Z]+ message received/ { inmsg = 1; key = ""; via = 0; next }
	/^[A-Z]+ message sent/ { inmsg = 0; next }
	!inmsg { next }
	{ sub(/\r$/, "") }
	key == "" { if (NF > 0) key = $1; next }
	NF == 0 { inmsg = 0; next }
	key == want && !via && tolower($1) == "via:" {
		via = 1; h = $3; sub(/;.*/, "", h)
		if (h !~ /:[0-9]+$/) h = h ":5060"
		print h
	}' "$1" | sort -u
}

# call_ids LOG DIR: the distinct Call-IDs of messages DIR (sent|recv).
call_ids() { msg_list "$1" | awk -v dir="$2" '$1 == dir { print $4 }' | sort -u; }

# uac_identifiers LOG: what identifies the caller's own dialogs and
# transactions: Call-IDs, its From tags and its Via branches (sent messages).
uac_identifiers() {
	awk '
	/^[A-Z]+ message sent/ { s = 1; next }
	/^[A-Z]+ message received/ || /^-----/ { s = 0; next }
	!s { next }
	{ sub(/\r$/, "") }
	tolower($1) == "call-id:" { print $2 }
	tolower($1) == "from:" && match($0, /tag=[^;>, ]+/) { print substr($0, RSTART + 4, RLENGTH - 4) }
	tolower($1) == "via:" && match($0, /branch=[^;, ]+/) { print substr($0, RSTART + 7, RLENGTH - 7) }
	' "$1" | sort -u
}

# sipp_stop NAME: stop a sipp run that has no end of its own (a UAS without
# -m) by its PID, once the test has seen what it waited for; its message
# log is complete afterwards.
sipp_stop() {
	_stop "${SIPP_PID[$1]}" 3
}

# udp_spray SOCKETS FILE...: send each FILE as one datagram to the public
# port from SOCKETS fresh sockets on $ADDR (different source ports, so the
# kernel's SO_REUSEPORT hashing spreads the copies over the workers); prints
# the source ports.  Needs python3 (the test skips without it).
udp_spray() {
	command -v python3 >/dev/null 2>&1 || skip "python3 not found"
	python3 "$SIPP_DIR/own_udp_send.py" "$ADDR" "$ADDR" "$SIP_PORT" "$@" ||
		fail "own_udp_send.py $* failed"
}

# ------------------------------------------------------------ assertions

assert_eq() {  # EXPECTED ACTUAL WHAT
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
	case $2 in
	*$'\n'*) log "ok: $3 ($(printf '%s\n' "$2" | wc -l) lines equal)" ;;
	*) log "ok: $3 = $2" ;;
	esac
}

assert_ge() {  # MIN ACTUAL WHAT
	[ "$2" -ge "$1" ] 2>/dev/null || fail "$3: expected >= $1, got '$2'"
	log "ok: $3 = $2 (>= $1)"
}

assert_grep() {  # ERE FILE WHAT
	grep -Eq -- "$1" "$2" || fail "$3: /$1/ not found in $(basename "$2")"
	log "ok: $3"
}

assert_no_grep() {  # ERE FILE WHAT
	if grep -Eq -- "$1" "$2"; then
		fail "$3: /$1/ found in $(basename "$2"): $(grep -Em1 -- "$1" "$2")"
	fi
	log "ok: $3"
}

# assert_count LOG DIR WHAT N: the sipp message log LOG has exactly N
# distinct messages DIR of WHAT (see msg_count).
assert_count() {
	local n
	n=$(msg_count "$1" "$2" "$3")
	[ "$n" = "$4" ] || fail "$(basename "$1"): $2 $3: expected $4, got $n"
	log "ok: $(basename "$1"): $2 $3 = $n"
}

# assert_no_leak UAC-LOG UAS-LOG: nothing that identifies the caller's
# dialogs (Call-ID, From tag, Via branch) ever reached the callee.
assert_no_leak() {
	local ids=$T/uac-ids.$$
	uac_identifiers "$1" >"$ids"
	[ -s "$ids" ] || fail "no identifiers found in $(basename "$1")"
	if grep -F -f "$ids" "$2" >"$T/leaks.txt"; then
		fail "A-leg identifiers reached the B-leg ($(basename "$2")): $(head -n 3 "$T/leaks.txt")"
	fi
	log "ok: none of $(wc -l <"$ids") A-leg Call-IDs/tags/branches in $(basename "$2")"
}

# assert_sipp_ok NAME CALLS: sipp run NAME had CALLS successful, 0 failed calls.
assert_sipp_ok() {
	assert_eq "$2" "$(sipp_stat "$1" 'SuccessfulCall(C)')" "$1: successful calls"
	assert_eq 0 "$(sipp_stat "$1" 'FailedCall(C)')" "$1: failed calls"
}

# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# stat_of KEY: one field of `show stats --json` (final codes: 'final_codes["486"]').
stat_of() { cli_json stats ".$1 // 0"; }
