#!/bin/bash
#
# tcp_flow_failed — calls to a subscriber whose connection is gone while its
# binding is still in Redis (issue 11: flows in registrations; RFC 5626
# §5.3, docs/architecture.md "Connections: TCP and TLS").
#
# bob registers over TCP (digest) and his sipp is then stopped: the
# connection closes, the binding stays (it would only go at its expiry or a
# new REGISTER).  A batch of UDP calls to bob from one caller, over 2
# workers:
#   - the flow worker (the one holding bob's connection) finds it gone and
#     skips the binding; the other worker hands the call to it, which
#     answers 430 Flow Failed; either way the caller gets 480 Temporarily
#     Unavailable, the answer for a subscriber that cannot be reached, at
#     once (no call waits for invite_timeout);
#   - every failure is counted (flow_failed, and the flow worker's 430s)
#     and logged with the connection's token; one CDR per call, written by
#     the worker that took it.

. "$(dirname "$0")/lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

PREFIX=b2bua:
CALLS=10
SIPP_TIMEOUT=30

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
transports = [ \"udp\", \"tcp\" ];
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user bob bobpw

_sipp_common bob
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/reg_tcp_hold.xml" \
	-oocsf "$SIPP_DIR/uas_basic.xml" -i "$ADDR" -p "$UAS_PORT" -t t1 -s bob -ap bobpw \
	-m 1 -d 60000 "${_SIPP_ARGS[@]}" "$ADDR:$SIP_PORT") >"$T/bob.out" 2>&1 &
SIPP_PID[bob]=$!
_track "$!"
registered() { [ "$(msg_count "$T/bob.msg" recv 200/REGISTER)" -ge 1 ]; }
wait_for 5 registered || fail "bob's REGISTER over TCP got no 200"
key=$(rcli HKEYS "${PREFIX}loc:bob")
binding=$(rcli HGET "${PREFIX}loc:bob" "$key")
flow=$(jq -r .flow <<<"$binding")
FLOW_WORKER=$(jq -r .flow_worker <<<"$binding")
OTHER=$((1 - FLOW_WORKER))
log "bob's flow $flow, held by worker $FLOW_WORKER"

# bob's phone goes away: its connection closes, its binding stays.
sipp_stop bob
closed() { [ "$(ss -Htn state established "( sport = :$UAS_PORT ) and src $ADDR" | wc -l)" = 0 ]; }
wait_for 5 closed || fail "bob's connection is still established"
sleep 0.3   # the worker reads the close
assert_eq 1 "$(rcli HLEN "${PREFIX}loc:bob")" "bob's binding is still in Redis"

start=$SECONDS
uac_run uac uac_expect_code -s bob -m "$CALLS" -r 10 -l 5 -key maxfwd 70 -key extra_hdr "X-Test: none"
assert_sipp_ok uac "$CALLS"
assert_count "$T/uac.msg" recv 480 "$CALLS"
assert_ge 0 "$((5 - (SECONDS - start)))" "the callers had their answers at once (within 5 s)"

created_other=$(worker_counter "$OTHER" calls_created) || fail "no calls_created"
created_flow=$(worker_counter "$FLOW_WORKER" calls_created) || fail "no calls_created"
log "calls_created: flow worker $FLOW_WORKER $created_flow, worker $OTHER $created_other"
assert_ge 1 "$created_other" "calls the other worker took (handed to the flow worker)"
assert_eq "$CALLS" "$(stat_of flow_failed)" "every call counted as a failed flow"
assert_eq "$created_other" "$(stat_of 'final_codes["430"]')" "the flow worker answered the hand-offs 430"
assert_eq "$CALLS" "$(stat_of 'final_codes["480"]')" "the callers were answered 480"
assert_grep "registered over tcp connection $flow, which is gone" "$T/b2bua.log" \
	"the failed flow logged with its token"

wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_for 5 eval '[ "$(rcli XLEN "${PREFIX}cdr")" -ge '"$CALLS"' ]' ||
	fail "$(rcli XLEN "${PREFIX}cdr") CDRs, $CALLS expected"
sleep 0.5
assert_eq "$CALLS" "$(rcli XLEN "${PREFIX}cdr")" "one CDR per call"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
