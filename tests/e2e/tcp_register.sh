#!/bin/bash
#
# tcp_register — a subscriber registered over TCP is called over its
# connection, whichever worker takes the call (issue 11: flows in
# registrations; docs/architecture.md, "Connections: TCP and TLS").
#
# bob's sipp registers over one TCP connection (-t t1) with digest (401,
# then 200) and keeps it open; an out-of-call scenario (uas_basic) answers
# the calls that reach it over that connection.  With 2 workers:
#   - the binding in Redis records its flow: transport tcp, the connection's
#     token (our end / bob's end), the worker that accepted it;
#   - a batch of UDP calls from one caller: rendezvous hashing of the
#     Call-ID gives both workers some (asserted: calls_created per worker,
#     and the flow worker's hand-offs from its sibling = the other worker's
#     calls); every one reaches bob over his connection (Via SIP/2.0/TCP,
#     sent from the public port bob connected to, never a new connection),
#     the caller gets 200s, and every call has exactly one CDR;
#   - carol, registered over TCP the same way, rings and never answers:
#     callers that CANCEL get 487, and every CANCEL reaches her over her
#     connection, through the flow worker for the calls of the other one;
#   - bob de-registers over the same connection (Expires 0, challenged):
#     the binding is gone.

. "$(dirname "$0")/lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

PREFIX=b2bua:
CALLS=20
SIPP_TIMEOUT=60

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
transports = [ \"udp\", \"tcp\" ];
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user bob bobpw
add_user carol carolpw

# bob: registers over TCP, holds the connection 20 s, then de-registers.
_sipp_common bob
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/reg_tcp_hold.xml" \
	-oocsf "$SIPP_DIR/uas_basic.xml" -i "$ADDR" -p "$UAS_PORT" -t t1 -s bob -ap bobpw \
	-m 1 -d 20000 "${_SIPP_ARGS[@]}" "$ADDR:$SIP_PORT") >"$T/bob.out" 2>&1 &
SIPP_PID[bob]=$!
_track "$!"
# carol: the same on port $UAS_PORT + 1, a phone that rings and never answers.
_sipp_common carol
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/reg_tcp_hold.xml" \
	-oocsf "$SIPP_DIR/uas_ring_forever.xml" -i "$ADDR" -p "$((UAS_PORT + 1))" -t t1 -s carol \
	-ap carolpw -m 1 -d 20000 "${_SIPP_ARGS[@]}" "$ADDR:$SIP_PORT") >"$T/carol.out" 2>&1 &
SIPP_PID[carol]=$!
_track "$!"
registered() { [ "$(msg_count "$T/$1.msg" recv 200/REGISTER)" -ge 1 ]; }
wait_for 5 registered bob || fail "bob's REGISTER over TCP got no 200"
wait_for 5 registered carol || fail "carol's REGISTER over TCP got no 200"
assert_count "$T/bob.msg" recv 401 1
assert_count "$T/bob.msg" recv 200/REGISTER 1

# ---------------------------------------------------------------- the binding's flow
key=$(rcli HKEYS "${PREFIX}loc:bob")
[ -n "$key" ] || fail "bob has no binding"
binding=$(rcli HGET "${PREFIX}loc:bob" "$key")
log "binding $key: $binding"
conn=$(ss -Htn state established "( dport = :$SIP_PORT and dst $ADDR )" | awk '{print $3}' |
	head -n 1)
[ -n "$conn" ] || fail "bob's connection to the public port is not established"
assert_eq tcp "$(jq -r .transport <<<"$binding")" "the binding's transport"
assert_eq "$conn" "$(jq -r .source <<<"$binding")" "the binding's source is bob's end of the connection"
assert_eq "$ADDR:$SIP_PORT/$conn" "$(jq -r .flow <<<"$binding")" "the binding's flow token (our end / bob's end)"
FLOW_WORKER=$(jq -r .flow_worker <<<"$binding")
case $FLOW_WORKER in 0 | 1) ;; *) fail "flow_worker is '$FLOW_WORKER'" ;; esac
assert_eq "$FLOW_WORKER" "$(jq -r .worker <<<"$binding")" "flow_worker is the worker that took the REGISTER"
OTHER=$((1 - FLOW_WORKER))

# ---------------------------------------------------------------- calls from both workers
uac_run uac uac_basic -s bob -m "$CALLS" -r 10 -l 5
assert_sipp_ok uac "$CALLS"
assert_count "$T/uac.msg" recv 200/INVITE "$CALLS"
wait_for 10 eval '[ "$(msg_count "$T/bob.msg" sent 200/BYE)" -ge '"$CALLS"' ]' ||
	fail "bob answered $(msg_count "$T/bob.msg" sent 200/BYE) BYEs, $CALLS expected"
assert_count "$T/bob.msg" recv INVITE "$CALLS"
assert_count "$T/bob.msg" recv ACK "$CALLS"
assert_count "$T/bob.msg" recv BYE "$CALLS"
# Over his connection: every INVITE names TCP and the public port he
# connected to, and no connection other than his was ever made to him.
assert_eq "SIP/2.0/TCP" "$(msg_header "$T/bob.msg" recv INVITE Via | awk '{print $1}' | sort -u)" \
	"every INVITE bob got came over TCP"
assert_eq "$ADDR:$SIP_PORT" "$(msg_top_vias "$T/bob.msg" INVITE)" \
	"... from the public port bob connected to"
assert_eq 1 "$(ss -Htn state established "( sport = :$UAS_PORT ) and src $ADDR" | wc -l)" \
	"bob has one connection, the one he registered over"
assert_no_grep "UDP" <(msg_header "$T/bob.msg" recv INVITE Via) "no INVITE reached bob over UDP"

# Both workers took calls: the flow worker relayed the other's (one
# hand-off each), and the other worker created a call for each of them
# too.  calls_created counts the flow worker's relay legs as well.
created_flow=$(worker_counter "$FLOW_WORKER" calls_created) || fail "no calls_created"
created_other=$(worker_counter "$OTHER" calls_created) || fail "no calls_created"
relayed=$(stat_of peer_relayed)
log "calls_created: flow worker $FLOW_WORKER $created_flow, worker $OTHER $created_other; hand-offs $relayed"
assert_ge 1 "$created_other" "calls the other worker took (handed to the flow worker)"
assert_eq "$created_other" "$relayed" "each of the other worker's calls handed to the flow worker once"
assert_ge 1 "$((created_flow - relayed))" "calls the flow worker took itself"
assert_eq "$CALLS" "$((created_flow - relayed + created_other))" "every call taken by one worker"
assert_grep "hand-off from a sibling worker for 'bob'" "$T/b2bua.log" "the hand-offs logged"

# One CDR per call, by the worker that took it.
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
wait_for 5 eval '[ "$(rcli XLEN "${PREFIX}cdr")" -ge '"$CALLS"' ]' ||
	fail "$(rcli XLEN "${PREFIX}cdr") CDRs, $CALLS expected"
sleep 0.5
assert_eq "$CALLS" "$(rcli XLEN "${PREFIX}cdr")" "one CDR per call (none from the relaying worker)"
cdr_workers() { rcli XRANGE "${PREFIX}cdr" - + | awk 'prev == "worker" { print } { prev = $0 }'; }
assert_eq "$created_other" "$(cdr_workers | grep -cx "$OTHER")" \
	"the CDRs of the handed-off calls were written by the worker that took them"
assert_eq 0 "$(stat_of flow_failed)" "no flow failed"

# ---------------------------------------------------------------- CANCEL, from both workers
uac_run cancel uac_cancel -s carol -m 12 -r 10 -l 12
assert_sipp_ok cancel 12
assert_count "$T/cancel.msg" recv 487 12
wait_for 5 eval '[ "$(msg_count "$T/carol.msg" recv ACK)" -ge 12 ]' ||
	fail "carol got $(msg_count "$T/carol.msg" recv ACK) ACKs for her 487s, 12 expected"
assert_count "$T/carol.msg" recv INVITE 12
assert_count "$T/carol.msg" recv CANCEL 12
assert_eq "SIP/2.0/TCP" "$(msg_header "$T/carol.msg" recv CANCEL Via | awk '{print $1}' | sort -u)" \
	"every CANCEL reached carol over TCP"
assert_ge "$((relayed + 1))" "$(stat_of peer_relayed)" "some cancelled calls went through the flow worker"
wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"

# ---------------------------------------------------------------- de-registration over TCP
uas_wait bob
assert_count "$T/bob.msg" recv 200/REGISTER 2
uas_wait carol
assert_eq 0 "$(rcli EXISTS "${PREFIX}loc:bob")" "bob's binding is gone after the de-registration"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
