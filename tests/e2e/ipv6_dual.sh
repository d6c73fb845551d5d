#!/bin/bash
#
# ipv6_dual — dual stack: one daemon on an IPv4 and an IPv6 address
# (listen = [ "$ADDR", "::1" ], transports udp and tcp; issue 11: "listen
# gains per-transport entries (... IPv4 and IPv6)").  Each address has its
# own sockets in every worker; a leg's Via and Contact are on the address
# of its peer's family.
#
#   1. Every worker has a public and an own UDP socket and TCP listener on
#      each address.
#   2. An IPv4 caller calls an IPv6 callee (route target sip:[::1]:port) and
#      hangs up: the callee's INVITE and BYE carry our Via and Contact on
#      [::1], the caller's 200 our Contact on $ADDR (its ACK and BYE go
#      there).
#   3. An IPv6 caller calls an IPv4 callee, which hangs up: the callee's
#      INVITE carries our Via and Contact on $ADDR, the caller's 200 our
#      Contact on [::1], and the BYE we send the caller our Via on [::1].
#   4. 12 IPv6 calls to an IPv4 callee from one socket, every request to the
#      public port: those handed over between the workers are answered from
#      the public IPv6 socket (all succeed).
#   5. An IPv4 caller over TCP calls an IPv6 callee over TCP.
#   6. One CDR per call, the call table empty at the end.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"
grep -qi '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null || skip "no IPv6 loopback (::1)"

# ::1 is one address for every test: ports of this run's own (from its PID,
# away from ipv6_call's), checked free; the IPv4 side uses the same ports.
base=$((20050 + ($$ % 400) * 100))
SIP_PORT=$base
WORKER_PORT_BASE=$((base + 10))
UAS_PORT=$((base + 20))
_UAC_PORT_NEXT=$((base + 30))
if { ss -Huan; ss -Htan; } | awk '{print $4}' |
	grep -q "^\[::1\]:$((base / 100))\(5[0-9]\|[6-9][0-9]\)$"; then
	skip "ports $base-$((base + 49)) on [::1] in use"
fi
V6="[::1]"

redis_start
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$V6:$UAS_PORT;transport=udp\"; },
            { prefix = \"2\"; target = \"sip:$ADDR:$UAS_PORT;transport=udp\"; },
            { prefix = \"3\"; target = \"sip:$V6:$UAS_PORT;transport=tcp\"; }"
CFG_TRUSTED="\"$ADDR\", \"::1\""
CFG_EXTRA="transports = [ \"udp\", \"tcp\" ];"
write_config
sed -i "s/^listen = .*/listen = [ \"$ADDR\", \"::1\" ];/" "$CONF"
b2b_start
assert_grep "worker 0 ready: sip $ADDR:$SIP_PORT, \[::1\]:$SIP_PORT," "$T/b2bua.log" \
	"the worker names both addresses"

# ---------------------------------------------------------------- 1. sockets
for host in "$ADDR" "$V6"; do
	assert_eq "$CFG_WORKERS" "$(ss -Huan | awk '{print $4}' | grep -cxF "$host:$SIP_PORT")" \
		"UDP sockets on the public port of $host"
	assert_eq "$CFG_WORKERS" "$(ss -Htln | awk '{print $4}' | grep -cxF "$host:$SIP_PORT")" \
		"TCP listeners on the public port of $host"
	for i in $(seq 0 $((CFG_WORKERS - 1))); do
		_bound_at "$host:$((WORKER_PORT_BASE + i))" ||
			fail "worker $i has no own port on $host"
	done
done
log "ok: every worker listens on both addresses"

# own_of: the own port of the worker of the one call up.
own_of() { echo $((WORKER_PORT_BASE + $(cli_json calls '.[0].worker'))); }

# ---------------------------------------------------------------- 2. IPv4 -> IPv6
uas_start_at ::1 uas6 uas_basic -m 1
uac_launch uac4 uac_basic "$ADDR" "$ADDR:$SIP_PORT" -s 1000 -m 1 -d 2000
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the IPv4 -> IPv6 call ANSWERED"
OWN=$(own_of)
sipp_wait uac4 || fail "uac4 exited $?"
uas_wait uas6
assert_sipp_ok uac4 1
assert_sipp_ok uas6 1
assert_grep "^SIP/2.0/UDP \[::1\]:$OWN;" <(msg_header "$T/uas6.msg" recv INVITE Via) \
	"the IPv6 callee's INVITE: our Via on [::1]"
assert_grep "^<sip:$(node_id)@\[::1\]:$OWN;transport=udp>$" \
	<(msg_header "$T/uas6.msg" recv INVITE Contact) "the IPv6 callee's INVITE: our Contact on [::1]"
assert_grep "^SIP/2.0/UDP \[::1\]:$OWN;" <(msg_header "$T/uas6.msg" recv BYE Via) \
	"the BYE relayed to the IPv6 callee: our Via on [::1]"
assert_grep "^<sip:$(node_id)@$ADDR:$OWN;transport=udp>$" \
	<(msg_header "$T/uac4.msg" recv 200 Contact) "the IPv4 caller's 200: our Contact on $ADDR"
assert_grep "^BYE sip:$(node_id)@$ADDR:$OWN;transport=udp " <(grep -a '^BYE ' "$T/uac4.msg") \
	"the IPv4 caller's BYE went to our IPv4 Contact"
assert_no_leak "$T/uac4.msg" "$T/uas6.msg"
CID_46=$(call_ids "$T/uac4.msg" sent)
wait_for 5 calls_empty || fail "show calls not empty after the IPv4 -> IPv6 call"

# ---------------------------------------------------------------- 3. IPv6 -> IPv4, callee hangs up
uas_start uas4 uas_send_bye -m 1 -d 2000
uac_launch uac6 uac_recv_bye_v6 ::1 "$V6:$SIP_PORT" -s 2000 -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the IPv6 -> IPv4 call ANSWERED"
OWN=$(own_of)
sipp_wait uac6 || fail "uac6 exited $?"
uas_wait uas4
assert_sipp_ok uac6 1
assert_sipp_ok uas4 1
assert_grep "^SIP/2.0/UDP $ADDR:$OWN;" <(msg_header "$T/uas4.msg" recv INVITE Via) \
	"the IPv4 callee's INVITE: our Via on $ADDR"
assert_grep "^<sip:$(node_id)@$ADDR:$OWN;transport=udp>$" \
	<(msg_header "$T/uas4.msg" recv INVITE Contact) "the IPv4 callee's INVITE: our Contact on $ADDR"
assert_grep "^<sip:$(node_id)@\[::1\]:$OWN;transport=udp>$" \
	<(msg_header "$T/uac6.msg" recv 200 Contact) "the IPv6 caller's 200: our Contact on [::1]"
assert_grep "^SIP/2.0/UDP \[::1\]:$OWN;" <(msg_header "$T/uac6.msg" recv BYE Via) \
	"the BYE we sent the IPv6 caller: our Via on [::1]"
assert_no_leak "$T/uac6.msg" "$T/uas4.msg"
CID_64=$(call_ids "$T/uac6.msg" sent)
wait_for 5 calls_empty || fail "show calls not empty after the IPv6 -> IPv4 call"

# ---------------------------------------------------------------- 4. hand-over of IPv6 datagrams
handed() { cli_json workers "[.[].$1] | add"; }
before=$(handed handed_out)
uas_start uas12 uas_basic -m 12
_sipp_common uac12
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sn uac -i ::1 -p "$((base + 29))" \
	-s 2000 -m 12 -r 20 "${_SIPP_ARGS[@]}" "$V6:$SIP_PORT") >"$T/uac12.out" 2>&1 ||
	fail "uac12 exited $?"
uas_wait uas12
assert_sipp_ok uac12 12
# P(no hand-over in 12 calls from one socket to 2 workers) = 2^-12.
assert_ge $((before + 1)) "$(handed handed_out)" "IPv6 datagrams handed over between the workers"
wait_for 5 calls_empty || fail "show calls not empty after the 12 calls"

# ---------------------------------------------------------------- 5. TCP, IPv4 -> IPv6
uas_start_at ::1 uast uas_basic -m 1 -t t1
uac_launch uact uac_basic "$ADDR" "$ADDR:$SIP_PORT" -s 3000 -m 1 -d 2000 -t tn -max_socket 100
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the TCP call ANSWERED"
OWN=$(own_of)
sipp_wait uact || fail "uact exited $?"
uas_wait uast
assert_sipp_ok uact 1
assert_sipp_ok uast 1
assert_grep "^<sip:$(node_id)@$ADDR:$OWN;transport=tcp>$" \
	<(msg_header "$T/uact.msg" recv 200 Contact) "the IPv4 TCP caller's 200: our TCP Contact on $ADDR"
assert_grep "^SIP/2.0/TCP \[::1\]:$OWN;" <(msg_header "$T/uast.msg" recv INVITE Via) \
	"the IPv6 TCP callee's INVITE: our Via over TCP on [::1]"
assert_grep "^<sip:$(node_id)@\[::1\]:$OWN;transport=tcp>$" \
	<(msg_header "$T/uast.msg" recv INVITE Contact) "the IPv6 TCP callee's INVITE: our TCP Contact"
CID_T=$(call_ids "$T/uact.msg" sent)

# ---------------------------------------------------------------- 6. the record
wait_for 5 calls_empty || fail "show calls not empty at the end: $(cli show calls)"
log "ok: show calls empty at the end"
wait_cdrs 15
i=$(cdr_index ".a_call_id == \"$CID_46\"")
assert_cdr "$i" "callee=sip:1000@$ADDR:$SIP_PORT" "answered_by=sip:1000@$V6:$UAS_PORT;transport=udp" \
	"disposition=ANSWERED" "hangup_by=caller"
i=$(cdr_index ".a_call_id == \"$CID_64\"")
assert_cdr "$i" "callee=sip:2000@$V6:$SIP_PORT" "disposition=ANSWERED" "hangup_by=callee"
assert_match '^sip:sipp@\[::1\]:[0-9]+$' "$(cdr_get "$i" caller)" "CDR caller on [::1]"
i=$(cdr_index ".a_call_id == \"$CID_T\"")
assert_cdr "$i" "callee=sip:3000@$ADDR:$SIP_PORT" "disposition=ANSWERED" "hangup_by=caller"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
