#!/bin/bash
#
# redis_sentinel — Redis through Sentinel (issue 10, item 1), one b2bua host
# with a registrar, a real primary, replica and three sentinels on loopback
# (redis_ha_lib.sh), and a fake sentinel listed first.
#
# What each part proves:
#   - the fake sentinel (a plain redis-server: it answers SENTINEL with an
#     error) is skipped with one warning per worker naming its address and
#     the error, and the workers find the primary through the next one; the
#     connected line names primary, sentinel and master; a REGISTER lands on
#     the primary;
#   - SENTINEL FAILOVER: without a restart of b2bua, REGISTER works again
#     within 5 s, every worker logs the new primary, and the new binding is
#     on the new primary (b2bua did not keep writing to the demoted one);
#     READONLY, if seen at all, is logged at most once per worker;
#   - SIGKILL of the primary: once Sentinel promoted the replica, REGISTER
#     works again within 5 s, and the binding is on the promoted one;
#   - b2bua-cli (the management side) finds the primary the same way: the
#     `user add` after each failover is on the new primary.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/redis_ha_lib.sh"

PREFIX=b2bua:

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# reg_ok NAME: sipp run NAME got a 200 to its REGISTER.
reg_ok() { [ "$(msg_count "$T/$1.msg" recv 200)" -ge 1 ] 2>/dev/null; }

# reg_within SECONDS NAME PORT USER PASSWORD: REGISTER from $ADDR:PORT until
# one gets its 200 (a 503 while b2bua finds the primary fails a run at once);
# fails the test after SECONDS.  Sets REG_MS (ms until the 200).
reg_within() {
	local secs=$1 name=$2 port=$3 user=$4 pw=$5 t0 n=0
	t0=$(now_ms)
	while :; do
		n=$((n + 1))
		SIPP_TIMEOUT=3 uac_start "$name.$n" reg_auth -p "$port" -s "$user" -ap "$pw" -m 1 \
			-key exp_hdr "Expires: 3600" -key cparams ""
		sipp_wait "$name.$n"
		reg_ok "$name.$n" && break
		[ $(($(now_ms) - t0)) -lt $((secs * 1000)) ] ||
			fail "$name: no 200 to REGISTER within $secs s ($n attempts)"
		sleep 0.2
	done
	REG_MS=$(($(now_ms) - t0))
	log "ok: $name: REGISTER answered 200 after $REG_MS ms ($n attempts)"
}

# on_primary ADDR USER PORT: the binding of USER from $ADDR:PORT is on ADDR.
on_primary() {
	[ "$(_ha_cli "$1" HEXISTS "${PREFIX}loc:$2" "sip:$2@$ADDR:$3")" = 1 ]
}

# primary_logged ADDR [FROM]: every worker logged "connected" to primary
# ADDR (in the log after line FROM, default 0).
primary_logged() {
	[ "$(tail -n "+$((${2:-0} + 1))" "$T/b2bua.log" |
		grep -c "redis primary $1 (via sentinel [0-9.:]*, master $HA_MASTER_NAME): connected")" \
		-ge "$CFG_WORKERS" ]
}

log_lines() { wc -l <"$T/b2bua.log"; }

# Every "worker N ready:" line: a worker restarted by the master adds one.
ready_lines() { grep -c 'worker [0-9][0-9]* ready:' "$T/b2bua.log"; }

ha_start

# ---------------------------------------------------------------- a fake sentinel, first
_ha_free_port
FAKE_PORT=$_HA_PORT
redis-server --bind "$HA_ADDR" --port "$FAKE_PORT" --save "" --appendonly no \
	--daemonize no --dir "$T" >"$T/fake-sentinel.log" 2>&1 &
_track "$!"
_ha_wait_ping "$HA_ADDR:$FAKE_PORT" "$!" fake-sentinel
FAKE=$HA_ADDR:$FAKE_PORT

registrar_config
CFG_EXTRA="$CFG_EXTRA
redis_sentinels = ( \"$FAKE\", $HA_SENTINELS );
redis_master_name = \"$HA_MASTER_NAME\";"
write_config
b2b_start
P0=$(ha_primary)
wait_for 5 primary_logged "$P0" || fail "workers did not log the primary $P0 as connected"
assert_grep "redis primary $P0 \(via sentinel ${HA_SENTINEL_ADDRS[0]}, master $HA_MASTER_NAME\): connected" \
	"$T/b2bua.log" "the connected line names primary, sentinel and master"
assert_eq "$CFG_WORKERS" \
	"$(grep -c "warn: redis sentinel $FAKE (master $HA_MASTER_NAME): answered an error: .*: skipped" "$T/b2bua.log")" \
	"one warning per worker for the fake sentinel"
READY_BEFORE=$(ready_lines)

add_user alice secret
[ "$(_ha_cli "$P0" HEXISTS "${PREFIX}user:alice" md5)" = 1 ] ||
	[ "$(_ha_cli "$P0" EXISTS "${PREFIX}user:alice")" = 1 ] ||
	fail "b2bua-cli's user add is not on the primary $P0"
reg_within 5 r1 5201 alice secret
on_primary "$P0" alice 5201 || fail "r1's binding is not on the primary $P0"

# ---------------------------------------------------------------- SENTINEL FAILOVER
L=$(log_lines)
ha_failover
P1=$HA_NEW_PRIMARY
reg_within 5 r2 5202 alice secret
on_primary "$P1" alice 5202 || fail "r2's binding is not on the new primary $P1"
wait_for 5 primary_logged "$P1" "$L" || fail "workers did not log the new primary $P1"
alive "$B2B_PID" || fail "b2bua exited"
assert_eq "$READY_BEFORE" "$(ready_lines)" "no worker restarted"
n=$(grep -c 'READONLY' "$T/b2bua.log")
[ "$n" -le "$CFG_WORKERS" ] || fail "$n READONLY lines: at most one per worker expected"
log "ok: failover $P0 -> $P1 followed ($n READONLY lines)"
add_user bob bobpw
[ "$(_ha_cli "$P1" EXISTS "${PREFIX}user:bob")" = 1 ] ||
	fail "b2bua-cli's user add after the failover is not on the new primary $P1"

# ---------------------------------------------------------------- SIGKILL of the primary
# The demoted node must replicate again, or nothing is left to promote.
ha_wait_resynced
L=$(log_lines)
ha_kill_primary
ha_wait_promoted
P2=$HA_NEW_PRIMARY
reg_within 5 r3 5203 alice secret
on_primary "$P2" alice 5203 || fail "r3's binding is not on the promoted primary $P2"
on_primary "$P2" alice 5202 || fail "r2's binding (written after the failover) was lost"
wait_for 5 primary_logged "$P2" "$L" || fail "workers did not log the promoted primary $P2"
alive "$B2B_PID" || fail "b2bua exited"
assert_eq "$READY_BEFORE" "$(ready_lines)" "no worker restarted"
add_user carol carolpw
[ "$(_ha_cli "$P2" EXISTS "${PREFIX}user:carol")" = 1 ] ||
	fail "b2bua-cli's user add after the kill is not on the promoted primary $P2"

# The fake sentinel stayed skipped: the workers start at the sentinel that worked.
assert_eq "$CFG_WORKERS" \
	"$(grep -c "redis sentinel $FAKE (master $HA_MASTER_NAME): answered an error" "$T/b2bua.log")" \
	"the fake sentinel was logged once per worker in all"
b2b_stop || fail "b2bua did not stop cleanly"
log "ok: primary $P0, failover to $P1, killed, promoted $P2; b2bua followed each"
