# shellcheck shell=bash
#
# multihost_lib.sh — several b2bua hosts sharing one Redis, for e2e tests.
# Sourced after lib.sh:
#     . "$(dirname "$0")/lib.sh"
#     . "$(dirname "$0")/multihost_lib.sh"
#
# Design note.  A "host" is one whole b2bua instance (master, management
# process, workers) as an operator runs it on one machine.  Here each host
# gets, on loopback:
#   - an address of its own (mh_addr N: 127.x.y.z, picked like lib.sh's
#     _pick_addr from the test's name, the host's number and the PID, and
#     moved on while anything is bound to it), so every host uses the usual
#     fixed ports ($SIP_PORT, $WORKER_PORT_BASE + i) without clashing with
#     the other hosts or with a parallel run;
#   - a directory of its own ($T/hostN: config, CLI socket, CDR spool) and a
#     log $T/b2bua-hostN.log (the name lib.sh's EXIT trap scans for
#     sanitizer reports);
#   - node_id hostN; everything that must be the same on every host of one
#     deployment (domain, auth_secret, redis_prefix, Redis) is the same.
# The test's own address $ADDR stays the callers' and callees' (sipp) and is
# the served domain: a sipp UA writes the domain in its Request-URI and To
# ([remote_ip]) and sends to host N with -rsa, as a phone whose DNS SRV
# lookup picked that host would.  Hosts trust $ADDR (trusted callers, as in
# lib.sh) and each other (hand-offs between hosts).
#
# Redis (MH_REDIS, set before sourcing this file):
#   unix      (default) lib.sh's redis_start: one redis-server on a Unix
#             socket in $T; rcli talks to it;
#   tcp       one redis-server on $ADDR:$MH_REDIS_PORT;
#   sentinel  tests/e2e/redis_ha_lib.sh's primary + replica + 3 sentinels;
#             each host's config names the sentinels (redis_sentinels,
#             redis_master_name) instead of redis_address.
# Every process is started in the background, tracked with lib.sh's _track
# and ended by PID only; every wait is a bounded poll on a condition.

MH_N=0                     # hosts configured so far (mh_write_config)
MH_REDIS=${MH_REDIS:-unix} # unix | tcp | sentinel
MH_REDIS_PORT=${MH_REDIS_PORT:-6379}
MH_DOMAIN=$ADDR            # the domain every host serves
MH_SECRET="e2e-secret-0123456789"
MH_PREFIX=b2bua:           # redis_prefix (the default; written explicitly)
MH_CFG_EXTRA_ALL=""        # config lines for every host
declare -A MH_CFG_EXTRA=() # host number -> more config lines for that host
declare -A MH_ADDR=()      # host number -> its loopback address
declare -A MH_PID=()       # host number -> its master's pid
declare -A MH_KIDS=()      # host number -> pids of its children seen (mgmt, workers)
MH_REGISTRAR=1             # 1: domain + auth_secret (registrar); 0: routes only
MH_TRUSTED_EXTRA=""        # more trusted entries (quoted, comma-separated)

# Sourced here, at the top level: its `declare -A` inside a function would
# make its tables local to that function.
if [ "$MH_REDIS" = sentinel ]; then
	[ -f "$_here/redis_ha_lib.sh" ] ||
		hard_error "MH_REDIS=sentinel needs tests/e2e/redis_ha_lib.sh (branch sentinel)"
	declare -F ha_start >/dev/null || . "$_here/redis_ha_lib.sh"
fi

# ------------------------------------------------------------ addresses

# _mh_pick_addr N: a free loopback address for host N, distinct from $ADDR
# and from every other host's.
_mh_pick_addr() {
	local i=$1 h a b c n cand j taken
	h=$(printf '%s/host%s' "$TEST_NAME" "$i" | cksum | cut -d' ' -f1)
	a=$((h % 250 + 2))
	b=$((h / 250 % 256))
	c=$((($$ + i) % 250 + 2))
	for ((n = 0; n < 250; n++)); do
		cand="127.$a.$b.$c"
		taken=0
		[ "$cand" != "$ADDR" ] || taken=1
		for j in "${!MH_ADDR[@]}"; do
			[ "$j" = "$i" ] || [ "${MH_ADDR[$j]}" != "$cand" ] || taken=1
		done
		if [ "$taken" = 0 ] &&
			! ss -Huan 2>/dev/null | awk '{print $4}' | grep -q "^$cand:"; then
			MH_ADDR[$i]=$cand
			return 0
		fi
		c=$(((c - 2 + 1) % 250 + 2))
	done
	hard_error "no free loopback address 127.$a.$b.* for host $i"
}

# mh_pick_addrs N: give hosts 1..N their addresses, once (in this shell:
# a pick made inside $(...) would be lost, and re-picked differently once
# the host has bound its address).
mh_pick_addrs() {
	local i
	for ((i = 1; i <= $1; i++)); do
		[ -n "${MH_ADDR[$i]:-}" ] || _mh_pick_addr "$i"
	done
}

# mh_addr N: host N's address (mh_write_config picks it).
mh_addr() {
	[ -n "${MH_ADDR[$1]:-}" ] || hard_error "mh_addr $1: no address yet (mh_pick_addrs $1)"
	echo "${MH_ADDR[$1]}"
}

mh_dir() { echo "$T/host$1"; }
mh_log() { echo "$T/b2bua-host$1.log"; }
mh_conf() { echo "$T/host$1/b2bua.conf"; }
mh_sock() { echo "$T/host$1/cli.sock"; }

# ------------------------------------------------------------ redis

# mh_redis_start: the Redis every host shares, per MH_REDIS.  Afterwards
# rcli talks to it (for sentinel: to the current primary, redis_ha_lib.sh's).
mh_redis_start() {
	case $MH_REDIS in
	unix) redis_start ;;
	tcp) _mh_redis_tcp_start ;;
	sentinel)
		ha_start
		# rcli follows the primary the sentinels name.
		rcli() { ha_rcli "$@"; } ;;
	*) hard_error "MH_REDIS='$MH_REDIS': unix, tcp or sentinel" ;;
	esac
}

_mh_redis_tcp_start() {
	local deadline
	command -v redis-server >/dev/null 2>&1 ||
		skip "redis-server not found (Debian package redis-server)"
	redis-server --bind "$ADDR" --port "$MH_REDIS_PORT" --save "" --appendonly no \
		--daemonize no --dir "$T" >"$T/redis.log" 2>&1 &
	REDIS_PID=$!
	_track "$REDIS_PID"
	rcli() { redis-cli -h "$ADDR" -p "$MH_REDIS_PORT" "$@"; }
	deadline=$((SECONDS + 5))
	until [ "$(rcli ping 2>/dev/null)" = PONG ]; do
		alive "$REDIS_PID" || fail "redis-server exited during start-up"
		[ "$SECONDS" -lt "$deadline" ] || fail "redis-server not ready within 5 s"
		sleep 0.05
	done
}

# The config lines that point a host at the shared Redis.
_mh_redis_lines() {
	case $MH_REDIS in
	unix) echo "redis_address = \"unix:$T/redis.sock\";" ;;
	tcp) echo "redis_address = \"$ADDR:$MH_REDIS_PORT\";" ;;
	sentinel) ha_config ;;  # redis_sentinels, redis_master_name
	esac
}

# ------------------------------------------------------------ config

# mh_write_config N: host N's config from lib.sh's CFG_* knobs (workers,
# timeouts, routes, log level), MH_CFG_EXTRA_ALL and MH_CFG_EXTRA[N].
mh_write_config() {
	local i=$1 j dir trusted
	dir=$(mh_dir "$i")
	mkdir -p "$dir/spool"
	[ "$i" -le "$MH_N" ] || MH_N=$i
	mh_pick_addrs "$MH_N"
	trusted="\"$ADDR\""
	for ((j = 1; j <= MH_N; j++)); do
		trusted="$trusted, \"$(mh_addr "$j")\""
	done
	trusted="$trusted${MH_TRUSTED_EXTRA:+, $MH_TRUSTED_EXTRA}"
	cat >"$(mh_conf "$i")" <<EOF
# written by tests/e2e/multihost_lib.sh for $TEST_NAME, host $i
node_id = "host$i";
workers = $CFG_WORKERS;
drain_timeout = $CFG_DRAIN_TIMEOUT;
listen = "$(mh_addr "$i")";
sip_port = $SIP_PORT;
worker_port_base = $WORKER_PORT_BASE;
max_forwards = $CFG_MAX_FORWARDS;
invite_timeout = $CFG_INVITE_TIMEOUT;
call_capacity = $CFG_CALL_CAPACITY;
cli_socket = "$(mh_sock "$i")";
log_level = "$CFG_LOG_LEVEL";
cdr_spool_dir = "$dir/spool";
redis_prefix = "$MH_PREFIX";
$(_mh_redis_lines)
routes = ( $CFG_ROUTES );
trusted = ( $trusted );
$([ "$MH_REGISTRAR" = 1 ] && printf 'domain = "%s";\nauth_secret = "%s";\nauth_algorithms = [ "MD5" ];' \
		"$MH_DOMAIN" "$MH_SECRET")
$MH_CFG_EXTRA_ALL
${MH_CFG_EXTRA[$i]:-}
EOF
}

# mh_write_configs N: hosts 1..N (each trusts all N).
mh_write_configs() {
	local i
	MH_N=$1
	for ((i = 1; i <= $1; i++)); do
		mh_write_config "$i"
	done
}

# ------------------------------------------------------------ the hosts

_mh_ready_workers() {
	grep -o 'worker [0-9][0-9]* ready:' "$(mh_log "$1")" 2>/dev/null | sort -u | wc -l
}

# Host N's children (management process, workers) as of now, remembered so
# that lib.sh's EXIT trap kills any that outlive their master.
_mh_remember_kids() {
	local p
	[ -n "${MH_PID[$1]:-}" ] && [ -z "${_REAPED[${MH_PID[$1]}]:-}" ] || return 0
	for p in $(pgrep -P "${MH_PID[$1]}" 2>/dev/null); do
		case " ${MH_KIDS[$1]:-} " in
		*" $p "*) ;;
		*) MH_KIDS[$1]="${MH_KIDS[$1]:-} $p"
		   _B2B_CHILDREN+=("$p") ;;
		esac
	done
}

# mh_start N: start host N (config written if absent) and wait up to 10 s
# for its workers and CLI socket.  An earlier log of host N is kept.
mh_start() {
	local i=$1 logf deadline runs
	logf=$(mh_log "$i")
	[ -f "$(mh_conf "$i")" ] || mh_write_config "$i"
	if [ -s "$logf" ]; then
		runs=1
		while [ -e "${logf%.log}.$runs.log" ]; do runs=$((runs + 1)); done
		mv "$logf" "${logf%.log}.$runs.log"
	fi
	rm -f "$(mh_sock "$i")"
	: >"$logf"
	"$B2BUA" -c "$(mh_conf "$i")" >>"$logf" 2>&1 &
	MH_PID[$i]=$!
	MH_KIDS[$i]=""
	_track "$!"
	deadline=$((SECONDS + 10))
	while [ "$(_mh_ready_workers "$i")" -lt "$CFG_WORKERS" ] || [ ! -S "$(mh_sock "$i")" ]; do
		alive "${MH_PID[$i]}" || fail "host $i: b2bua exited during start-up"
		[ "$SECONDS" -lt "$deadline" ] ||
			fail "host $i not ready within 10 s ($(_mh_ready_workers "$i")/$CFG_WORKERS workers)"
		sleep 0.05
	done
	_mh_remember_kids "$i"
	log "host $i: b2bua pid ${MH_PID[$i]} ready on $(mh_addr "$i"):$SIP_PORT ($CFG_WORKERS workers)"
}

# mh_start_all N: write the configs of hosts 1..N and start them.
mh_start_all() {
	local i
	mh_write_configs "$1"
	for ((i = 1; i <= $1; i++)); do
		mh_start "$i"
	done
}

# mh_redis_up N: every worker of host N's current run logged its Redis
# connection.  Use as `wait_for 5 mh_redis_up 2`.
mh_redis_up() {
	[ "$(grep -c 'redis .*: connected' "$(mh_log "$1")")" -ge "$CFG_WORKERS" ]
}

# mh_all_redis_up N: hosts 1..N all connected (wait_for 5 mh_all_redis_up 3).
mh_all_redis_up() {
	local i
	for ((i = 1; i <= $1; i++)); do
		mh_redis_up "$i" || return 1
	done
}

# mh_stop N [SECONDS]: SIGTERM host N's master, wait (bounded) and return
# its exit status; 124 when it had to be killed.
mh_stop() {
	local i=$1 grace=${2:-10} pid rc
	pid=${MH_PID[$i]:-}
	[ -n "$pid" ] || hard_error "mh_stop $i: host $i was never started"
	_mh_remember_kids "$i"
	kill -TERM "$pid" 2>/dev/null
	if wait_gone "$pid" "$grace"; then
		wait "$pid"
		rc=$?
	else
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rc=124
	fi
	_REAPED[$pid]=1
	return "$rc"
}

# mh_kill N: host N dies at once, as a machine that loses power: its master
# is stopped (SIGSTOP, so it forks no replacement), then the master, its
# management process and every worker get SIGKILL, by PID; returns once all
# of them are gone (fails the test after 5 s).
mh_kill() {
	local i=$1 pid p pids
	pid=${MH_PID[$i]:-}
	[ -n "$pid" ] && [ -z "${_REAPED[$pid]:-}" ] || hard_error "mh_kill $i: host $i not running"
	kill -STOP "$pid" 2>/dev/null
	_mh_remember_kids "$i"
	pids="$pid ${MH_KIDS[$i]}"
	for p in $pids; do
		# A remembered child may be long gone and its pid reused: only
		# what still runs our binary is killed.
		if [ "$p" = "$pid" ] ||
			[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$B2BUA")" ]; then
			kill -KILL "$p" 2>/dev/null
		fi
	done
	for p in $pids; do
		wait_gone "$p" 5 || fail "host $i: pid $p still alive 5 s after SIGKILL"
	done
	{ wait "$pid"; } 2>/dev/null  # no "Killed" job notice
	_REAPED[$pid]=1
	log "host $i killed (pids $pids)"
}

# mh_cli N ARGS...: b2bua-cli on host N's socket, bounded.
mh_cli() {
	local i=$1
	shift
	timeout 5 "$CLI" -s "$(mh_sock "$i")" "$@"
}

# mh_cli_json N WHAT JQ-FILTER: host N's `show WHAT --json` through a jq
# filter (an object wrapping the array under WHAT is unwrapped, as cli_json).
mh_cli_json() {
	local i=$1 what=$2 filter=$3 out
	out=$(mh_cli "$i" show "$what" --json) || fail "host $i: b2bua-cli show $what --json failed"
	printf '%s' "$out" | jq -r --arg w "$what" \
		"(if type == \"object\" and has(\$w) then .[\$w] else . end) | $filter" ||
		fail "host $i: show $what --json: not JSON or filter failed: $out"
}

# mh_stat N KEY: one field of host N's `show stats --json`.
mh_stat() { mh_cli_json "$1" stats ".$2 // 0"; }

# mh_log_has N ERE: host N's log matches.
mh_log_has() { grep -Eq -- "$2" "$(mh_log "$1")"; }

# mh_add_user NAME PASSWORD [add_user options]: lib.sh's add_user through
# host 1's CLI (subscribers live in the shared Redis: every host sees them).
mh_add_user() {
	local CLI_SOCK
	CLI_SOCK=$(mh_sock 1)
	add_user "$@"
}

# ------------------------------------------------------------ sipp towards host N

# mh_uac_start N NAME SCENARIO [SIPP ARGS...]: lib.sh's uac_start, sent to
# host N: the Request-URI and To name the domain ($MH_DOMAIN, i.e. $ADDR),
# the datagrams go to host N's public port (-rsa).  Callee 1000 unless -s.
mh_uac_start() {
	local i=$1 name=$2 scen=$3
	shift 3
	uac_launch "$name" "$scen" "$ADDR" "$MH_DOMAIN:$SIP_PORT" \
		-rsa "$(mh_addr "$i"):$SIP_PORT" "$@"
}

# mh_uac_route N NAME SCENARIO [SIPP ARGS...]: a call on the static routes
# through host N: the Request-URI names host N's own address, not the
# domain, so no location lookup is made (callee 1000, route prefix "1" to
# $ADDR:$UAS_PORT, unless -s).
mh_uac_route() {
	local i=$1 name=$2 scen=$3
	shift 3
	uac_launch "$name" "$scen" "$ADDR" "$(mh_addr "$i"):$SIP_PORT" "$@"
}

# mh_uac_run N NAME SCENARIO [ARGS...]: mh_uac_start then wait; fails the
# test unless sipp exits 0.
mh_uac_run() {
	local name=$2 rc
	mh_uac_start "$@"
	sipp_wait "$name"
	rc=$?
	[ "$rc" -eq 0 ] || fail "sipp $name exited $rc ($(sipp_stat "$name" 'FailedCall(C)') failed calls)"
}

# mh_register N NAME USER PASSWORD PORT [SIPP ARGS...]: USER's UA on
# $ADDR:PORT registers through host N (digest, Expires 3600, Contact = that
# address); fails the test unless it got a 200.
mh_register() {
	local i=$1 name=$2 user=$3 pw=$4 port=$5
	shift 5
	mh_uac_run "$i" "$name" reg_auth -p "$port" -s "$user" -ap "$pw" -m 1 \
		-key exp_hdr "Expires: 3600" -key cparams "" "$@"
	[ "$(msg_count "$T/$name.msg" recv 200)" = 1 ] ||
		fail "$user's REGISTER through host $i got no 200"
	log "ok: $user registered through host $i from $ADDR:$port"
}

# UAS: lib.sh's uas_start as it is (a callee on $ADDR, -p for another port);
# whichever host calls it, responses go back to the Via.

# ------------------------------------------------------------ CDRs

# mh_cdrs: every CDR in the shared stream as one JSON object a line
# (fields by name, plus "entry": the stream entry ID).
mh_cdrs() {
	rcli --json XRANGE "${MH_PREFIX}cdr" - + |
		jq -c '.[] | . as $e | ($e[1] | [range(0; length; 2) as $k | {(.[$k]): .[$k + 1]}] | add)
			+ {entry: $e[0]}'
}

# ------------------------------------------------------------ failure report

# lib.sh's _dump_failure, preceded by the tail of every host's log.
eval "_mh_lib_dump_failure() $(declare -f _dump_failure | tail -n +2)"
_dump_failure() {
	local f
	for f in "$T"/b2bua-host*.log; do
		[ -s "$f" ] || continue
		echo "----- $(basename "$f") (last 40 lines)" >&2
		tail -n 40 "$f" >&2
	done
	_mh_lib_dump_failure
}
