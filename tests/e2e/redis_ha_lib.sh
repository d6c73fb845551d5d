# shellcheck shell=bash
#
# redis_ha_lib.sh — a Redis primary, one replica and three sentinels on TCP
# loopback, for tests of Redis high availability.  Source after lib.sh.
#
# Design note.  Sentinel speaks ip:port only (no Unix sockets), so every
# process listens on $HA_ADDR (default $ADDR, the test's own address) at
# ports picked free at start.  Sentinels are the same redis-server binary
# run with `--sentinel` on a config file in $T (Sentinel rewrites it).  All
# waits poll a condition with a bound, never a fixed sleep; every process is
# tracked (lib.sh's _track) so the EXIT trap stops it by PID.  A connection
# to 127.x.y.z leaves from 127.0.0.1, so servers and sentinels announce
# $HA_ADDR explicitly (else the replica is known as 127.0.0.1:PORT, where
# nothing listens).  The helpers:
#   ha_start            start everything, wait until the three sentinels know
#                       the replica and each other; exports HA_MASTER_NAME,
#                       HA_SENTINELS ("\"ip:port\", ..." ready for a config
#                       list), HA_SENTINEL_ADDRS (array of ip:port)
#   ha_primary          ip:port of the primary as the sentinels say it
#   ha_failover         SENTINEL FAILOVER, wait for a new primary whose ROLE
#                       is master (and that the sentinels agree on); sets
#                       HA_OLD_PRIMARY and HA_NEW_PRIMARY
#   ha_wait_resynced    after ha_failover: the demoted node replicates again
#   ha_kill_primary     SIGKILL the current primary's process (PID tracked);
#                       sets HA_OLD_PRIMARY
#   ha_wait_promoted    after ha_kill_primary: wait for the promotion; sets
#                       HA_NEW_PRIMARY
# These three call fail themselves: call them directly, not in $(...).
#   ha_rcli ARGS...     redis-cli against the current primary
#   ha_role IP:PORT     first word of ROLE on that server
#   ha_config           config lines for write_config's CFG_EXTRA
# The initial primary and replica PIDs are in HA_PID["ip:port"].

HA_ADDR=${HA_ADDR:-$ADDR}
HA_MASTER_NAME=${HA_MASTER_NAME:-b2bua}
HA_SENTINELS=
HA_SENTINEL_ADDRS=()
HA_OLD_PRIMARY=
HA_NEW_PRIMARY=
declare -A HA_PID=()     # "ip:port" of a redis data server → its pid

# _ha_free_port: sets _HA_PORT to a TCP port nobody listens on at $HA_ADDR
# (from 20000 up, skipping ports this run already handed out).  Not called
# in $(...): the counter must survive.
_HA_PORT_NEXT=$((20000 + ($$ % 2000) * 10))
_ha_free_port() {
	local p
	for ((p = _HA_PORT_NEXT; p < 60000; p++)); do
		if ! ss -Htln 2>/dev/null | awk '{print $4}' | grep -q "^$HA_ADDR:$p\$" &&
			! ss -Htln 2>/dev/null | awk '{print $4}' | grep -q "^\*:$p\$"; then
			_HA_PORT_NEXT=$((p + 1))
			_HA_PORT=$p
			return 0
		fi
	done
	hard_error "no free TCP port on $HA_ADDR"
}

# _ha_cli IP:PORT ARGS...: redis-cli on one server, bounded.
_ha_cli() {
	local ap=$1
	shift
	timeout 3 redis-cli -h "${ap%:*}" -p "${ap##*:}" "$@" 2>/dev/null
}

ha_role() { _ha_cli "$1" role | head -n 1; }

# _ha_wait_ping IP:PORT PID WHAT: until the server answers PONG (5 s).
_ha_wait_ping() {
	local deadline=$((SECONDS + 5))
	until [ "$(_ha_cli "$1" ping)" = PONG ]; do
		alive "$2" || fail "$3 exited during start-up (see $T/$3.log)"
		[ "$SECONDS" -lt "$deadline" ] || fail "$3 not ready within 5 s"
		sleep 0.05
	done
}

# _ha_server NAME PORT [ARGS...]: one redis data server; prints nothing,
# records HA_PID.
_ha_server() {
	local name=$1 port=$2 pid
	shift 2
	mkdir -p "$T/$name"
	redis-server --bind "$HA_ADDR" --port "$port" --save "" --appendonly no \
		--daemonize no --dir "$T/$name" --protected-mode no \
		--replica-announce-ip "$HA_ADDR" --bind-source-addr "$HA_ADDR" "$@" \
		>"$T/$name.log" 2>&1 &
	pid=$!
	_track "$pid"
	HA_PID["$HA_ADDR:$port"]=$pid
	_ha_wait_ping "$HA_ADDR:$port" "$pid" "$name"
}

# _ha_sentinel N PORT PRIMARY_PORT: sentinel N with its own config file.
_ha_sentinel() {
	local n=$1 port=$2 pport=$3 pid
	cat >"$T/sentinel$n.conf" <<EOF
bind $HA_ADDR
port $port
daemonize no
protected-mode no
dir $T
sentinel resolve-hostnames no
sentinel announce-hostnames no
sentinel announce-ip $HA_ADDR
sentinel monitor $HA_MASTER_NAME $HA_ADDR $pport 2
sentinel down-after-milliseconds $HA_MASTER_NAME 1000
sentinel failover-timeout $HA_MASTER_NAME 3000
sentinel parallel-syncs $HA_MASTER_NAME 1
EOF
	redis-server "$T/sentinel$n.conf" --sentinel >"$T/sentinel$n.log" 2>&1 &
	pid=$!
	_track "$pid"
	_ha_wait_ping "$HA_ADDR:$port" "$pid" "sentinel$n"
}

# _ha_sentinels_ready: every sentinel knows the replica and 2 other sentinels.
_ha_sentinels_ready() {
	local s info
	for s in "${HA_SENTINEL_ADDRS[@]}"; do
		info=$(_ha_cli "$s" sentinel master "$HA_MASTER_NAME") || return 1
		[ "$(printf '%s\n' "$info" | sed -n '/^num-slaves$/{n;p}')" = 1 ] || return 1
		[ "$(printf '%s\n' "$info" | sed -n '/^num-other-sentinels$/{n;p}')" = 2 ] || return 1
	done
}

# ha_start: primary, replica (synced), three sentinels that know everything.
ha_start() {
	local pport rport sport n
	command -v redis-server >/dev/null 2>&1 ||
		skip "redis-server not found (Debian package redis-server)"
	_ha_free_port
	pport=$_HA_PORT
	_ha_free_port
	rport=$_HA_PORT
	_ha_server redis-primary "$pport"
	_ha_server redis-replica "$rport" --replicaof "$HA_ADDR" "$pport"
	wait_for 10 _ha_replica_synced "$HA_ADDR:$rport" ||
		fail "replica $HA_ADDR:$rport did not sync with $HA_ADDR:$pport within 10 s"
	HA_SENTINEL_ADDRS=()
	for n in 1 2 3; do
		_ha_free_port
		sport=$_HA_PORT
		_ha_sentinel "$n" "$sport" "$pport"
		HA_SENTINEL_ADDRS+=("$HA_ADDR:$sport")
	done
	HA_SENTINELS=$(printf '"%s", ' "${HA_SENTINEL_ADDRS[@]}")
	HA_SENTINELS=${HA_SENTINELS%, }
	wait_for 20 _ha_sentinels_ready ||
		fail "sentinels did not discover the replica and each other within 20 s"
	export HA_MASTER_NAME HA_SENTINELS
	log "redis HA: primary $HA_ADDR:$pport, replica $HA_ADDR:$rport, sentinels ${HA_SENTINEL_ADDRS[*]}"
}

# _ha_replica_synced IP:PORT: the replica's link to its primary is up.
_ha_replica_synced() {
	_ha_cli "$1" info replication | tr -d '\r' | grep -q '^master_link_status:up$'
}

# ha_primary: ip:port of the primary according to the first sentinel that
# answers (empty and status 1 when none does).
ha_primary() {
	local s out
	for s in "${HA_SENTINEL_ADDRS[@]}"; do
		out=$(_ha_cli "$s" sentinel get-master-addr-by-name "$HA_MASTER_NAME" | tr '\n' ':')
		out=${out%:}
		if [ -n "$out" ] && [ "${out#*:}" != "$out" ]; then
			echo "$out"
			return 0
		fi
	done
	return 1
}

# _ha_all_agree ADDR: every sentinel names ADDR as the primary.
_ha_all_agree() {
	local s out
	for s in "${HA_SENTINEL_ADDRS[@]}"; do
		out=$(_ha_cli "$s" sentinel get-master-addr-by-name "$HA_MASTER_NAME" | tr '\n' ':')
		[ "${out%:}" = "$1" ] || return 1
	done
}

# _ha_switched OLD: the sentinels agree on a primary other than OLD, and it
# says ROLE master.  Sets HA_NEW_PRIMARY.
_ha_switched() {
	HA_NEW_PRIMARY=$(ha_primary) || return 1
	[ "$HA_NEW_PRIMARY" != "$1" ] || return 1
	_ha_all_agree "$HA_NEW_PRIMARY" || return 1
	[ "$(ha_role "$HA_NEW_PRIMARY")" = master ]
}

# ha_failover [SECONDS]: a manual failover; waits (default 15 s) until the
# sentinels agree on a new primary whose ROLE is master.
ha_failover() {
	HA_OLD_PRIMARY=$(ha_primary) || fail "ha_failover: no sentinel names a primary"
	[ "$(_ha_cli "${HA_SENTINEL_ADDRS[0]}" sentinel failover "$HA_MASTER_NAME")" = OK ] ||
		fail "ha_failover: SENTINEL FAILOVER refused"
	wait_for "${1:-15}" _ha_switched "$HA_OLD_PRIMARY" ||
		fail "ha_failover: no new primary within ${1:-15} s (was $HA_OLD_PRIMARY)"
	log "redis HA: failover $HA_OLD_PRIMARY -> $HA_NEW_PRIMARY"
}

# ha_wait_resynced [SECONDS]: after ha_failover, wait (default 25 s) until
# the demoted node replicates from the new primary, so that a later
# ha_kill_primary leaves a replica to promote.  Slow by design: Sentinel
# reconfigures the old primary only on its next INFO poll (up to 10 s).
ha_wait_resynced() {
	wait_for "${1:-25}" _ha_replica_synced "$HA_OLD_PRIMARY" ||
		fail "$HA_OLD_PRIMARY did not resync as a replica within ${1:-25} s"
	log "redis HA: $HA_OLD_PRIMARY replicates from $HA_NEW_PRIMARY"
}

# ha_kill_primary: SIGKILL the process of the current primary (by the PID
# recorded at its start); HA_OLD_PRIMARY is the address it had.
ha_kill_primary() {
	local pid
	HA_OLD_PRIMARY=$(ha_primary) || fail "ha_kill_primary: no sentinel names a primary"
	pid=${HA_PID[$HA_OLD_PRIMARY]:-}
	[ -n "$pid" ] || fail "ha_kill_primary: no process recorded for $HA_OLD_PRIMARY"
	kill -KILL "$pid" 2>/dev/null
	wait_gone "$pid" 5 || fail "ha_kill_primary: pid $pid still alive"
	wait "$pid" 2>/dev/null   # reap it here, quietly (no "Killed" job notice)
	_REAPED[$pid]=1
	log "redis HA: killed primary $HA_OLD_PRIMARY (pid $pid)"
}

# ha_wait_promoted [SECONDS]: after ha_kill_primary, wait (default 15 s) for
# the sentinels to agree on a new primary with ROLE master (HA_NEW_PRIMARY).
ha_wait_promoted() {
	wait_for "${1:-15}" _ha_switched "$HA_OLD_PRIMARY" ||
		fail "no new primary within ${1:-15} s after $HA_OLD_PRIMARY died"
	log "redis HA: promoted $HA_NEW_PRIMARY (was $HA_OLD_PRIMARY)"
}

# ha_rcli ARGS...: redis-cli against the current primary.
ha_rcli() {
	local p
	p=$(ha_primary) || return 1
	_ha_cli "$p" "$@"
}

# ha_config: config lines for CFG_EXTRA (append to registrar_config's).
ha_config() {
	printf 'redis_sentinels = ( %s );\nredis_master_name = "%s";\n' \
		"$HA_SENTINELS" "$HA_MASTER_NAME"
}
