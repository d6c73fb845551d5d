#!/bin/bash
#
# reload — `b2bua-cli reload` and SIGHUP apply a changed configuration to
# every process without dropping a call (b2bua/master.c, config_reload.h).
#
#   1. 50 calls up (sipp UAC, 25 s of talk each, callee 1000) to the UAS on
#      $UAS_PORT, the target of route prefix "1";
#   2. the route of "1" changed in the file to a second UAS, `b2bua-cli
#      reload`: the answer names routes under applied and nothing under
#      restart_needed; new calls (callee 1999) reach the second UAS only;
#   3. a bad file (an unknown key): reload answers the error with file and
#      line and "nothing changed"; a new call still reaches the second UAS;
#   4. a restart-only key (sip_port) and log_level changed: the answer
#      (--json) names sip_port under restart_needed and log_level under
#      applied; the daemon still answers on its old port and logs in debug;
#   5. SIGHUP does the same as the CLI: the route moved to a third UAS,
#      the log names routes as applied, a new call reaches it;
#   6. the 50 calls end normally (BYE from the caller), and Redis holds
#      their 50 ANSWERED CDRs;
#   7. a worker that cannot answer (SIGSTOP) is named as not acknowledging,
#      within the bounded wait, and takes the reload once it runs again.

. "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2034  # read by lib.sh when it starts a sipp
SIPP_TIMEOUT=60
N=50
TALK_MS=25000
UAS2_PORT=5081
UAS3_PORT=5082

route_to() {  # PORT: the route of prefix "1" in $CONF goes to $ADDR:PORT
	sed -i "s|target = \"sip:$ADDR:[0-9]*;transport=udp\"|target = \"sip:$ADDR:$1;transport=udp\"|" \
		"$CONF"
}

answered_is() { [ "$(cli_json calls '[.[] | select(.state == "ANSWERED")] | length')" = "$1" ]; }

# cdr_answered CALLEE: ANSWERED CDRs in Redis whose callee is CALLEE.
cdr_answered() {
	cli cdr tail 1000 --json |
		jq --arg u "sip:$1@" '[.[] | select(.disposition == "ANSWERED" and
			(.callee | startswith($u)))] | length'
}

redis_start
CFG_WORKERS=2
write_config
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"

# --- 1. 50 calls up on the first route
uas_start uas1 uas_basic -m $N
uac_start long uac_basic -m $N -r 25 -l $N -d $TALK_MS
wait_for 15 answered_is $N || fail "calls not up: $(cli_json calls 'length') in the table"
log "ok: $N calls ANSWERED to the UAS on $UAS_PORT"

# --- 2. a new route, `b2bua-cli reload`
route_to $UAS2_PORT
cli reload >"$T/reload1.out" 2>&1 || fail "reload refused: $(cat "$T/reload1.out")"
assert_grep '^applied: routes$' "$T/reload1.out" "reload names routes under applied"
assert_grep '^restart_needed: none$' "$T/reload1.out" "nothing waits for a restart"
assert_grep 'reload: .*: applied: routes; restart_needed: none' "$T/b2bua.log" \
	"the master logs what it applied"
assert_eq "$N" "$(cli_json calls '[.[] | select(.state == "ANSWERED")] | length')" \
	"calls still up after the reload"
uas_start uas2 uas_basic -p $UAS2_PORT -m 6
uac_run new uac_basic -s 1999 -m 5 -r 5 -d 100
assert_count "$T/uas2.msg" recv INVITE 5
log "ok: new calls follow the new route"

# --- 3. a bad file changes nothing
cp "$CONF" "$T/good.conf"
echo 'routes_typo = 1;' >>"$CONF"
line=$(wc -l <"$CONF")
if cli reload >"$T/reload2.out" 2>&1; then
	fail "reload accepted a bad file: $(cat "$T/reload2.out")"
fi
assert_grep "$CONF:$line: routes_typo: unknown key.*nothing changed" "$T/reload2.out" \
	"the answer names file, line and key, and says nothing changed"
assert_grep "reload: $CONF:$line: routes_typo: unknown key" "$T/b2bua.log" \
	"the master logs the bad file"
uac_run after_bad uac_basic -s 1999 -m 1 -d 100
assert_count "$T/uas2.msg" recv INVITE 6
log "ok: after the bad file, a new call still follows the route in force"
cp "$T/good.conf" "$CONF"

# --- 4. a restart-only key is named and not applied
sed -i "s/^sip_port = .*/sip_port = $((SIP_PORT + 1));/; s/^log_level = .*/log_level = \"debug\";/" \
	"$CONF"
cli reload --json >"$T/reload3.json" 2>&1 || fail "reload refused: $(cat "$T/reload3.json")"
assert_eq '["log_level"]' "$(jq -c .applied "$T/reload3.json")" "applied (json)"
assert_eq '["sip_port"]' "$(jq -c .restart_needed "$T/reload3.json")" "restart_needed (json)"
wait_for 5 grep -Eq 'worker [01]\[[0-9]+\] debug: reload: generation' "$T/b2bua.log" ||
	fail "no worker logs in debug after log_level was applied"
log "ok: the workers log in debug"
# Still on the old port, and the route is unchanged (the second UAS).
uas_wait uas2
uas_start uas2b uas_basic -p $UAS2_PORT -m 1
uac_run old_port uac_basic -s 1999 -m 1 -d 100
assert_count "$T/uas2b.msg" recv INVITE 1
log "ok: sip_port is still $SIP_PORT after the reload"
cp "$T/good.conf" "$CONF"

# --- 5. SIGHUP does the same
route_to $UAS3_PORT
uas_start uas3 uas_basic -p $UAS3_PORT -m 1
kill -HUP "$B2B_PID"
wait_for 5 grep -q 'SIGHUP: .*: applied: log_level routes; restart_needed: none' \
	"$T/b2bua.log" || fail "SIGHUP did not log log_level and routes as applied"
log "ok: SIGHUP applied log_level and routes"
uac_run after_hup uac_basic -s 1999 -m 1 -d 100
assert_count "$T/uas3.msg" recv INVITE 1
log "ok: after SIGHUP, a new call follows the new route"

# --- 6. the 50 calls end normally, with their CDRs
sipp_wait long || fail "the long calls failed ($(sipp_stat long 'FailedCall(C)') failed)"
uas_wait uas1
assert_sipp_ok long $N
assert_count "$T/long.msg" sent BYE $N
assert_count "$T/long.msg" recv 200/BYE $N
assert_count "$T/uas1.msg" recv INVITE $N
wait_for 10 calls_empty || fail "calls left in the table: $(cli_json calls 'length')"
wait_for 10 eval '[ "$(cdr_answered 1000)" = $N ]' ||
	fail "ANSWERED CDRs of the long calls: $(cdr_answered 1000), expected $N"
log "ok: $N ANSWERED CDRs of the calls that were up during the reloads"

# --- 7. a worker that does not answer is named
w1=$(worker_counter 1 pid) || fail "no pid for worker 1"
sed -i 's/^max_forwards = .*/max_forwards = 30;/' "$CONF"
kill -STOP "$w1"
if cli reload >"$T/reload4.out" 2>&1; then
	kill -CONT "$w1"
	fail "reload with a stopped worker answered ok: $(cat "$T/reload4.out")"
fi
kill -CONT "$w1"
assert_grep 'not acknowledged within 2 s: worker 1' "$T/reload4.out" \
	"the answer names the worker that did not acknowledge"
assert_grep 'applied: max_forwards' "$T/reload4.out" "and what is in force"
alive "$B2B_PID" || fail "b2bua died"
log "PASS"
