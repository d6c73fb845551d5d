#!/bin/bash
#
# tcp_multihost — a subscriber registered over TCP through host1 is called
# through host2 (issue 11: flows in registrations, through any host;
# docs/architecture.md, "Connections: TCP and TLS").
#
# Two hosts of 2 workers share one Redis.  bob's sipp registers over one
# TCP connection to host1 (digest) and answers calls over it (out-of-call
# scenario uas_basic).  A batch of UDP calls to bob through host2:
#   - host2 cannot reach bob's connection: it hands each call to host1's
#     SIP address (X-B2bua-Handoff); host1's worker that gets it relays it
#     over the connection when it holds it, else to the worker that does;
#   - every call reaches bob over his one connection from host1, the caller
#     gets 200s;
#   - one CDR per call, all written by host2; host1 counts the hand-offs
#     (peer_relayed: at least one per call) and writes none.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/multihost_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

HOSTS=2
CALLS=8
BOB_PORT=5084
SIPP_TIMEOUT=40
MH_CFG_EXTRA_ALL='transports = [ "udp", "tcp" ];'

mh_redis_start
mh_start_all "$HOSTS"
wait_for 5 mh_all_redis_up "$HOSTS" || fail "not every host's workers connected to Redis"
mh_add_user bob bobpw

# bob: over TCP to host1 (the Request-URI names the domain).
_sipp_common bob
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/reg_tcp_hold.xml" \
	-oocsf "$SIPP_DIR/uas_basic.xml" -i "$ADDR" -p "$BOB_PORT" -t t1 -s bob -ap bobpw \
	-m 1 -d 15000 "${_SIPP_ARGS[@]}" -rsa "$(mh_addr 1):$SIP_PORT" "$ADDR:$SIP_PORT") \
	>"$T/bob.out" 2>&1 &
SIPP_PID[bob]=$!
_track "$!"
registered() { [ "$(msg_count "$T/bob.msg" recv 200/REGISTER)" -ge 1 ]; }
wait_for 5 registered || fail "bob's REGISTER over TCP to host1 got no 200"
key=$(rcli HKEYS "${MH_PREFIX}loc:bob")
binding=$(rcli HGET "${MH_PREFIX}loc:bob" "$key")
assert_eq host1 "$(jq -r .host <<<"$binding")" "the binding's host"
assert_eq tcp "$(jq -r .transport <<<"$binding")" "the binding's transport"
assert_eq "$(mh_addr 1):$SIP_PORT/$ADDR:$BOB_PORT" "$(jq -r .flow <<<"$binding")" \
	"the binding's flow: host1's public port / bob"

mh_uac_run 2 c uac_basic -s bob -m "$CALLS" -r 10 -l 4
assert_sipp_ok c "$CALLS"
wait_for 10 eval '[ "$(msg_count "$T/bob.msg" sent 200/BYE)" -ge '"$CALLS"' ]' ||
	fail "bob answered $(msg_count "$T/bob.msg" sent 200/BYE) BYEs, $CALLS expected"
assert_count "$T/bob.msg" recv INVITE "$CALLS"
assert_eq "SIP/2.0/TCP" "$(msg_header "$T/bob.msg" recv INVITE Via | awk '{print $1}' | sort -u)" \
	"every INVITE reached bob over TCP"
assert_eq "$(mh_addr 1):$SIP_PORT" "$(msg_top_vias "$T/bob.msg" INVITE)" \
	"... from host1's public port, where his connection is"
assert_eq 1 "$(ss -Htn state established "( sport = :$BOB_PORT ) and src $ADDR" | wc -l)" \
	"bob has one connection"
assert_ge "$CALLS" "$(mh_stat 1 peer_relayed)" "host1 relayed every call (and some twice)"
assert_eq 0 "$(mh_stat 2 peer_relayed)" "host2 relayed nothing"
mh_log_has 1 "hand-off from a peer host for 'bob'" || fail "host1 did not log the hand-offs"

cdrs_at_least() { [ "$(mh_cdrs | wc -l)" -ge "$1" ]; }
wait_for 10 cdrs_at_least "$CALLS" || fail "the calls' CDRs are not in the stream"
sleep 1
mh_cdrs >"$T/cdrs.jsonl"
assert_eq "$CALLS" "$(wc -l <"$T/cdrs.jsonl")" "one CDR per call"
assert_eq "$CALLS" "$(jq -r 'select(.host == "host2") | .id' "$T/cdrs.jsonl" | wc -l)" \
	"all written by host2"
uas_wait bob
log "PASS"
