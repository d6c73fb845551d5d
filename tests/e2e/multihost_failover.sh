#!/bin/bash
#
# multihost_failover — three b2bua hosts reach Redis through Sentinel
# (primary, one replica, three sentinels: redis_ha_lib.sh) and lose the
# Redis primary twice while carrying calls at about $RATE calls/s (issue 10,
# item 5):
#   round 1: SENTINEL FAILOVER (the primary is demoted, the replica promoted);
#   round 2: SIGKILL of the primary (Sentinel detects it and promotes).
# In each round $CALLS_PER_HOST calls go through each host on the static
# routes (no Redis on the call path) and the primary is lost once a third
# of the calls reached the callee.  Then:
#   - REGISTER (digest, location write) works again through every host
#     within 5 s of the sentinels agreeing on the new primary: a 200 whose
#     binding is on the new primary;
#   - every call's CDR is on the new primary exactly once: as many CDRs as
#     Call-IDs the callers sent (= calls sipp made, successful or not),
#     unique ids, the a_call_ids exactly the Call-IDs sent, as many ANSWERED
#     as sipp's successful calls — the CDRs of round 1 included after round 2;
#   - no b2bua was restarted (same master, no worker or management process
#     restarted).
# Needs Sentinel discovery (redis_sentinels, redis_master_name; following a
# switch) and CDRs confirmed on a replica with WAIT (redis_wait_replicas:
# until then a CDR stays in the spool).

. "$(dirname "$0")/lib.sh"
MH_REDIS=sentinel
. "$(dirname "$0")/multihost_lib.sh"

HOSTS=3
CALLS_PER_HOST=200   # 600 calls a round
RATE=34              # calls/s per host: about 100 calls/s in all
REG_PORT=5091
REG_DEADLINE_MS=5000

# invites_at_least NAME N: sipp UAS NAME has received N INVITEs.
invites_at_least() {
	[ "$(grep -ac '^INVITE ' "$T/$1.msg" 2>/dev/null)" -ge "$2" ]
}

sipp_gone() { ! alive "${SIPP_PID[$1]}"; }

# bound_on_new_primary LOG PORT: the binding that the REGISTER in sipp log
# LOG made from $ADDR:PORT is on the new primary.  A 200 alone proves
# nothing: until Sentinel reconfigures it, a demoted primary still accepts
# writes, which are wiped when it resyncs.
bound_on_new_primary() {
	local cid
	cid=$(call_ids "$1" sent)
	[ "$(_ha_cli "$HA_NEW_PRIMARY" HGET "${MH_PREFIX}loc:alice" "sip:alice@$ADDR:$2" |
		jq -r .call_id 2>/dev/null)" = "$cid" ]
}

# register_all R SINCE_MS: through every host at once (host h from port
# REG_PORT + h), REGISTER until a 200 whose binding is on the new primary,
# each by SINCE_MS + REG_DEADLINE_MS (every attempt bounded by sipp's
# -timeout).
register_all() {
	local r=$1 since=$2 h n now rc name left=" "
	for ((h = 1; h <= HOSTS; h++)); do
		left="$left$h "
	done
	for ((n = 1; ; n++)); do
		for h in $left; do
			SIPP_TIMEOUT=3 mh_uac_start "$h" "reg$r-h$h-$n" reg_auth -p $((REG_PORT + h)) \
				-s alice -ap alicepw -m 1 -key exp_hdr "Expires: 3600" -key cparams ""
		done
		for h in $left; do
			name=reg$r-h$h-$n
			sipp_wait "$name"
			rc=$?
			now=$(date +%s%3N)
			if [ "$rc" = 0 ] && [ "$(msg_count "$T/$name.msg" recv 200)" = 1 ] &&
				bound_on_new_primary "$T/$name.msg" $((REG_PORT + h)); then
				log "ok: round $r: REGISTER through host $h: 200, bound on the new primary, by $((now - since)) ms after the sentinels agreed on it (attempt $n)"
				left=${left/ $h / }
				continue
			fi
			[ $((now - since)) -lt "$REG_DEADLINE_MS" ] ||
				fail "round $r: REGISTER through host $h: no 200 within $REG_DEADLINE_MS ms of the new primary ($n attempts; the last got $(msg_list "$T/$name.msg" | awk '$1 == "recv" { k = $2 } END { print k }'), its binding $(bound_on_new_primary "$T/$name.msg" $((REG_PORT + h)) || echo not) on the new primary)"
		done
		[ -n "${left// /}" ] || return 0
		sleep 0.1
	done
}

# round R HOW: one round of calls; HOW = failover | kill.
round() {
	local r=$1 how=$2 h total since
	total=$((HOSTS * CALLS_PER_HOST))
	uas_start "uas$r" uas_basic -m "$total"
	for ((h = 1; h <= HOSTS; h++)); do
		mh_uac_route "$h" "r$r-h$h" uac_basic -m "$CALLS_PER_HOST" -r "$RATE" -d 1000
	done
	wait_for 30 invites_at_least "uas$r" $((total / 3)) ||
		fail "round $r: the callee got fewer than $((total / 3)) INVITEs in 30 s"
	log "round $r: $(grep -ac '^INVITE ' "$T/uas$r.msg") INVITEs reached the callee: the primary goes ($how)"
	case $how in
	failover) ha_failover ;;
	kill) ha_kill_primary
	      ha_wait_promoted ;;
	esac
	since=$(date +%s%3N)
	register_all "$r" "$since"
	for ((h = 1; h <= HOSTS; h++)); do
		sipp_wait "r$r-h$h"
		log "round $r, host $h: sipp exited $?: $(sipp_stat "r$r-h$h" 'SuccessfulCall(C)') successful, $(sipp_stat "r$r-h$h" 'FailedCall(C)') failed calls"
		call_ids "$T/r$r-h$h.msg" sent >>"$T/sent"
		echo "$(sipp_stat "r$r-h$h" 'SuccessfulCall(C)')" >>"$T/ok-calls"
		echo "$(sipp_stat "r$r-h$h" 'FailedCall(C)')" >>"$T/failed-calls"
	done
	# The callee ends by itself once it saw every call; a call that never
	# reached it must not keep it for sipp's whole timeout.
	wait_for 10 sipp_gone "uas$r" || sipp_stop "uas$r"
}

cdr_count() { mh_cdrs | wc -l; }
cdrs_at_least() { [ "$(cdr_count)" -ge "$1" ]; }

# check_cdrs WHAT: the CDRs on the current primary are every call sent so
# far, each exactly once.
check_cdrs() {
	local what=$1 want ok
	sort -u -o "$T/sent" "$T/sent"
	want=$(wc -l <"$T/sent")
	assert_eq "$want" "$(($(paste -sd+ "$T/ok-calls") + $(paste -sd+ "$T/failed-calls")))" \
		"$what: Call-IDs sent = calls sipp made"
	wait_for 30 cdrs_at_least "$want" ||
		fail "$what: $(cdr_count) CDRs on the new primary $(ha_primary) after 30 s, expected $want"
	mh_cdrs >"$T/cdrs.jsonl"
	assert_eq "$want" "$(wc -l <"$T/cdrs.jsonl")" "$what: CDRs on the primary $(ha_primary)"
	assert_eq "$want" "$(jq -r .id "$T/cdrs.jsonl" | sort -u | wc -l)" "$what: distinct CDR ids"
	jq -r .a_call_id "$T/cdrs.jsonl" | sort >"$T/cdr-cids"
	assert_eq "$(cat "$T/sent")" "$(cat "$T/cdr-cids")" "$what: one CDR for each Call-ID sent"
	ok=$(paste -sd+ "$T/ok-calls")
	assert_eq "$((ok))" "$(jq -r 'select(.disposition == "ANSWERED") | .id' "$T/cdrs.jsonl" | wc -l)" \
		"$what: ANSWERED CDRs = sipp's successful calls"
}

# no_restart: every host still runs the master it started with, and no
# child of it was ever restarted.
no_restart() {
	local h
	for ((h = 1; h <= HOSTS; h++)); do
		alive "${MH_PID[$h]}" || fail "host $h: master pid ${MH_PID[$h]} is gone"
		assert_no_grep 'restarted as pid|killed by signal|exited with status' "$(mh_log "$h")" \
			"host $h: no process of it died or was restarted"
		assert_eq 0 "$(mh_cli_json "$h" workers '[.[].restarts] | add')" "host $h: worker restarts"
	done
}

: >"$T/sent"
: >"$T/ok-calls"
: >"$T/failed-calls"
mh_redis_start
mh_start_all "$HOSTS"
wait_for 10 mh_all_redis_up "$HOSTS" || fail "not every host's workers connected to Redis"
mh_add_user alice alicepw
mh_register 2 reg0 alice alicepw "$REG_PORT"

# ---------------------------------------------------------------- round 1
round 1 failover
check_cdrs "round 1 (SENTINEL FAILOVER)"
no_restart
ha_wait_resynced   # so that round 2's kill leaves a replica to promote

# ---------------------------------------------------------------- round 2
round 2 kill
check_cdrs "rounds 1 and 2 (SIGKILL of the primary)"
no_restart
log "PASS"
