#!/bin/bash
#
# cdr_redis_hung — no CDR lost, none twice, whatever Redis does: Redis hangs
# (SIGSTOP: its socket stays open, nothing answers) in the middle of a load,
# both workers are killed (SIGKILL) while it hangs, then Redis comes back.
#
#   1. sipp places short calls (RATE calls/s for DURATION s) over the static
#      route; calls from $ADDR are trusted and not to the subscribers'
#      domain ($DOMAIN), so no call needs Redis.
#   2. Redis is stopped mid-load.  While it hangs, a REGISTER (which needs
#      Redis) gets 503 with Retry-After within 2 s, and so does an INVITE to
#      a subscriber (which needs the location service).
#   3. Redis is resumed, the workers reconnect, and Redis is stopped again:
#      0.4 s later (well within redis_timeout, so the CDRs of the calls
#      that ended meanwhile wait for a reply that never comes, neither
#      confirmed nor synced) both workers are SIGKILLed; the master
#      restarts them.  Then Redis is resumed (SIGCONT).
#   4. When the load is over and the spools are drained: every call the
#      caller saw answered has exactly one ANSWERED CDR (by its Call-ID),
#      no CDR id is stored twice, and the stream holds at least as many
#      CDRs as sipp counted successful calls.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

RATE=${RATE:-100}
DURATION=${DURATION:-10}
CALLS=$((RATE * DURATION))
SIPP_TIMEOUT=$((DURATION + 40))
CFG_DRAIN_TIMEOUT=5
DOMAIN=sub.test   # subscribers' domain; calls to $ADDR take the static route
redis_start
CFG_EXTRA="domain = \"$DOMAIN\";
auth_secret = \"e2e-secret-0123456789\";
auth_algorithms = [ \"MD5\" ];
redis_timeout = 1000;"
write_config   # lib.sh trusts $ADDR (CFG_TRUSTED)
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"
add_user alice secret

spooled() { cat "$T"/spool/*.spool 2>/dev/null | wc -l; }
worker_pids() { cli_json workers '[.[].pid] | map(tostring) | join(" ")'; }

# --- 1. the load
uas_start uas uas_basic
uac_start uac uac_basic -m $CALLS -r $RATE -l $((RATE * 2)) -d 200
sleep 3

# --- 2. Redis hangs
log "stopping redis-server (SIGSTOP, pid $REDIS_PID)"
kill -STOP "$REDIS_PID" || hard_error "cannot stop redis-server"
sleep 0.5
uac_start reg reg_auth_503 -m 1 -s alice -ap secret
uac_start inv uac_sub_503 -m 1 -s alice -key domain "$DOMAIN"
sipp_wait reg || fail "REGISTER while Redis hangs: no 503 with Retry-After"
sipp_wait inv || fail "INVITE to a subscriber while Redis hangs: no final answer"
assert_count "$T/inv.msg" recv 503 1
# From the authenticated REGISTER (the last one sent) to its 503.
reg_sent=$(awk '/^-----/ { stamp = $2 " " $3 } /^UDP message sent/ { last = stamp } END { print last }' \
	"$T/reg.msg")
reg_ms=$(($(msg_time_ms "$T/reg.msg" recv 503) - $(date -d "$reg_sent" +%s%3N)))
inv_ms=$(($(msg_time_ms "$T/inv.msg" recv 503) - $(msg_time_ms "$T/inv.msg" sent INVITE)))
assert_between 0 2000 "$reg_ms" "ms from the authenticated REGISTER to its 503"
assert_between 0 2000 "$inv_ms" "ms from the INVITE to a subscriber to its 503"

# --- 3. both workers die while their CDRs wait on a hung Redis
kill -CONT "$REDIS_PID"
# A worker drops its connection only if it had a command waiting while Redis
# was stopped (which worker the requests above reached is the kernel's
# choice): every worker that dropped it must be back; the others never left.
dropped() { grep -c 'redis unix:.*: no reply within .*: connection dropped' "$T/b2bua.log"; }
reconnected() { [ "$(grep -c 'redis unix:.*: connected (down' "$T/b2bua.log")" -ge "$(dropped)" ]; }
assert_ge 1 "$(dropped)" "workers that dropped their Redis connection (redis_timeout)"
wait_for 10 reconnected || fail "the workers did not reconnect to Redis"
log "ok: every worker that dropped Redis reconnected; stopping redis-server again"
# The PIDs first: asking the CLI between the stop and the kill could take
# longer than redis_timeout on a busy machine, and then no CDR waits on
# Redis any more at the kill.
pids=$(worker_pids)
[ -n "$pids" ] || fail "no worker pids"
kill -STOP "$REDIS_PID" || hard_error "cannot stop redis-server"
sleep 0.4
log "SIGKILL to every worker ($pids) while Redis hangs"
# shellcheck disable=SC2086
kill -KILL $pids
restarted() {
	local now p
	now=$(worker_pids) || return 1
	for p in $pids; do
		case " $now " in *" $p "*) return 1 ;; esac
	done
	[ "$(echo "$now" | wc -w)" -eq "$CFG_WORKERS" ] && [[ ! " $now " =~ " 0 " ]]
}
wait_for 5 restarted || fail "the workers were not restarted: $(worker_pids)"
sleep 1
log "resuming redis-server (SIGCONT)"
kill -CONT "$REDIS_PID"

# --- 4. one CDR per call
sipp_wait uac
log "sipp: $(sipp_stat uac 'SuccessfulCall(C)') successful, $(sipp_stat uac 'FailedCall(C)') failed calls"
drained() { [ "$(spooled)" -eq 0 ] && [ "$(stat_of calls_active)" = 0 ]; }
# A call in set-up at the kill is ended by the successor, which may wait
# for its caller's ACK up to Timer H (32 s): see b2b_adopt.c.
wait_for 40 drained || fail "not drained: $(spooled) spooled CDRs, $(stat_of calls_active) calls"
sleep 1
cdr_load
ok=$(sipp_stat uac 'SuccessfulCall(C)')
total=$(jq length "$CDR_JSON")
log "stream: $total CDRs, $(jq '[.[] | select(.disposition == "ANSWERED")] | length' "$CDR_JSON") ANSWERED"
assert_ge $((CALLS / 2)) "$ok" "successful calls (a worker restart may fail a few)"
assert_ge "$ok" "$total" "CDRs in the stream"
assert_eq "$total" "$(jq '[.[].id] | unique | length' "$CDR_JSON")" "distinct CDR ids"
# The calls the caller saw answered, by Call-ID, against the ANSWERED CDRs.
msg_list "$T/uac.msg" | awk '$1 == "recv" && $2 == "200" && $3 == "INVITE" { print $4 }' |
	sort -u >"$T/answered.ids"
jq -r '.[] | select(.disposition == "ANSWERED") | .a_call_id' "$CDR_JSON" | sort >"$T/cdr.ids"
assert_ge "$ok" "$(wc -l <"$T/answered.ids")" "calls answered at the caller"
assert_eq "" "$(uniq -d "$T/cdr.ids" | head -n 3)" "no call with two ANSWERED CDRs"
missing=$(comm -23 "$T/answered.ids" "$T/cdr.ids" | head -n 5)
assert_eq "" "$missing" "answered calls without their ANSWERED CDR"
assert_eq "$(wc -l <"$T/answered.ids")" "$(wc -l <"$T/cdr.ids")" "ANSWERED CDRs = answered calls"
assert_grep 'CDR spool .* holds [0-9]+ CDRs from an earlier run' "$T/b2bua.log" \
	"the restarted workers found their predecessors' CDRs in the spool"
assert_no_grep 'LOST|rejected by' "$T/b2bua.log" "no CDR lost or rejected"
# Calls that had ended but whose CDR awaited Redis were ENDED in the table:
# the restarted workers freed those slots, and took none of them for a call.
assert_eq 0 "$(cli_json calls length)" "calls left in the table"
freed=$(grep -Eo '[0-9]+ ended calls whose CDR was being stored freed' "$T/b2bua.log" |
	awk '{ n += $1 } END { print n + 0 }')
log "slots of ended calls freed by the restarted workers: $freed"
assert_ge 1 "$freed" "ended calls freed at the takeover (some CDRs awaited Redis at the kill)"
log "PASS"
