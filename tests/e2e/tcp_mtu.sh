#!/bin/bash
#
# tcp_mtu — requests over the MTU (issue 11; RFC 3261 §18.1.1;
# docs/architecture.md, "Connections: TCP and TLS", "The MTU switch").
#
# A caller on UDP sends INVITEs with a 4 KB SDP offer (uac_big: 48 ICE
# candidates).  Asserted:
#   - to bob, registered over TCP: the INVITE reaches him over his
#     connection (Via SIP/2.0/TCP), the body intact; the caller gets its
#     200, talks, hangs up;
#   - to a route target that names no transport (transports has "tcp"):
#     the large INVITE goes over TCP (its callee listens on TCP only), and
#     a small one to such a target stays on UDP;
#   - to a route target with ;transport=udp: the large INVITE stays on UDP.
# The B-leg INVITE's headers are measured here too (the rule's allowance
# for them, B2B_HEADERS_MAX in worker/b2b_branch.c).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

PREFIX=b2bua:
SIPP_TIMEOUT=30
TCP_PORT=5081      # route "1": no transport, a callee on TCP only
UDP_PORT=5082      # route "2": ;transport=udp, a callee on UDP
SMALL_PORT=5083    # route "3": no transport, a callee on UDP only

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
transports = [ \"udp\", \"tcp\" ];
trusted = ( \"$ADDR\" );"
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$ADDR:$TCP_PORT\"; },
	{ prefix = \"2\"; target = \"sip:$ADDR:$UDP_PORT;transport=udp\"; },
	{ prefix = \"3\"; target = \"sip:$ADDR:$SMALL_PORT\"; }"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user bob bobpw

# ---------------------------------------------------------------- to bob, registered over TCP
_sipp_common bob
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/reg_tcp_hold.xml" \
	-oocsf "$SIPP_DIR/uas_basic.xml" -i "$ADDR" -p "$UAS_PORT" -t t1 -s bob -ap bobpw \
	-m 1 -d 6000 "${_SIPP_ARGS[@]}" "$ADDR:$SIP_PORT") >"$T/bob.out" 2>&1 &
SIPP_PID[bob]=$!
_track "$!"
registered() { [ "$(msg_count "$T/bob.msg" recv 200/REGISTER)" -ge 1 ]; }
wait_for 5 registered || fail "bob's REGISTER over TCP got no 200"

uac_run big uac_big -s bob -m 4 -r 10 -l 2
assert_sipp_ok big 4
sent_len=$(msg_header "$T/big.msg" sent INVITE Content-Length | sort -u)
assert_ge 4000 "$sent_len" "the caller's INVITEs carry a 4 KB body (Content-Length)"
assert_count "$T/bob.msg" recv INVITE 4
assert_eq "SIP/2.0/TCP" "$(msg_header "$T/bob.msg" recv INVITE Via | awk '{print $1}' | sort -u)" \
	"the large INVITEs reached bob over TCP"
assert_eq "$sent_len" "$(msg_header "$T/bob.msg" recv INVITE Content-Length | sort -u)" \
	"... with the body's length"
assert_eq "$(msg_body "$T/big.msg" sent INVITE | md5sum)" \
	"$(msg_body "$T/bob.msg" recv INVITE | md5sum)" "... and the body intact"
uas_wait bob

# ---------------------------------------------------------------- route targets
# The caller names another host than the domain (so the static routes
# apply) and sends to our public port (-rsa).
RHOST=$(other_addr 3)

# "1": no transport, large → TCP (the callee listens on TCP only).
_sipp_common tcp
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sf "$SIPP_DIR/uas_basic.xml" \
	-i "$ADDR" -p "$TCP_PORT" -t t1 "${_SIPP_ARGS[@]}" -m 1) >"$T/tcp.out" 2>&1 &
SIPP_PID[tcp]=$!
_track "$!"
listening() { ss -Htln "sport = :$TCP_PORT" | grep -q "$ADDR:$TCP_PORT"; }
wait_for 5 listening || fail "sipp tcp does not listen on TCP $ADDR:$TCP_PORT"
uac_launch c1 uac_big "$ADDR" "$RHOST:$SIP_PORT" -rsa "$ADDR:$SIP_PORT" -s 1000 -m 1
sipp_wait c1 || fail "sipp c1 exited $?"
uas_wait tcp
assert_sipp_ok c1 1
assert_eq "SIP/2.0/TCP" "$(msg_header "$T/tcp.msg" recv INVITE Via | awk '{print $1}')" \
	"a large INVITE to a target without transport went over TCP"
assert_eq "$(msg_body "$T/c1.msg" sent INVITE | md5sum)" "$(msg_body "$T/tcp.msg" recv INVITE | md5sum)" \
	"... its body intact"
assert_grep "$ADDR:$((WORKER_PORT_BASE)).*;transport=tcp|$ADDR:$((WORKER_PORT_BASE + 1)).*;transport=tcp" \
	<(msg_header "$T/tcp.msg" recv INVITE Contact) "... with our Contact ;transport=tcp"
assert_grep "INVITE of about [0-9]+ bytes, over 1300: over TCP" "$T/b2bua.log" "the switch logged"
# Our headers on that INVITE: its size on the wire less the body.
hdr=$(awk '/message received/ { m = 1; n = 0; next } m && /^-----/ { exit }
	m { n += length($0) + 1 } END { print n }' "$T/tcp.msg")
log "the B-leg INVITE: $hdr bytes in all, $((hdr - sent_len)) of headers"

# "2": ;transport=udp, large → stays on UDP.
uas_start udp uas_basic -p "$UDP_PORT" -m 1
uac_launch c2 uac_big "$ADDR" "$RHOST:$SIP_PORT" -rsa "$ADDR:$SIP_PORT" -s 2000 -m 1
sipp_wait c2 || fail "sipp c2 exited $?"
uas_wait udp
assert_sipp_ok c2 1
assert_eq "SIP/2.0/UDP" "$(msg_header "$T/udp.msg" recv INVITE Via | awk '{print $1}')" \
	"a large INVITE to a ;transport=udp target stayed on UDP"
assert_eq "$sent_len" "$(msg_header "$T/udp.msg" recv INVITE Content-Length)" "... whole"

# "3": no transport, small → stays on UDP (the callee listens on UDP only).
uas_start small uas_basic -p "$SMALL_PORT" -m 1
uac_launch c3 uac_basic "$ADDR" "$RHOST:$SIP_PORT" -rsa "$ADDR:$SIP_PORT" -s 3000 -m 1
sipp_wait c3 || fail "sipp c3 exited $?"
uas_wait small
assert_sipp_ok c3 1
assert_eq "SIP/2.0/UDP" "$(msg_header "$T/small.msg" recv INVITE Via | awk '{print $1}')" \
	"a small INVITE to a target without transport stayed on UDP"

wait_for 5 calls_empty || fail "calls left in the table: $(cli show calls)"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
