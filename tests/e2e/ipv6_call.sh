#!/bin/bash
#
# ipv6_call — the daemon on IPv6 only (listen = "::1", transports udp and
# tcp; issue 11: "one e2e call over [::1]").  Every peer is a sipp on ::1.
#
#   1. bob registers over UDP with digest from [::1]:UAS_PORT; his binding
#      (Contact, source) is in Redis with the address in brackets; this
#      host's SIP address in Redis too.
#   2. A trusted caller (trusted = "::1/128") calls bob over UDP: the B-leg
#      INVITE reaches his registered Contact with our Via and Contact on
#      [::1] and the worker's own port; the caller's 200 carries our
#      Contact on [::1], and its ACK and BYE go there (uac_v6 follows it).
#      The call table lists it while up; afterwards it is empty and the
#      CDR in Redis has the IPv6 URIs.
#   3. (The daemon restarted without a domain, so that calls follow the
#      routes.)  16 calls from one caller socket to the public port, ACK and BYE to
#      the public port too (sipp's built-in uac): calls whose Call-ID hashes
#      to the worker that did not receive them are handed over between the
#      workers with their IPv6 source addresses (`handed_out`/`handed_in`),
#      and every one succeeds.
#   4. A call over TCP on both legs: the caller on [::1] over TCP (sipp -t
#      tn), the callee a route target sip:[::1]:port;transport=tcp (sipp -t
#      t1): Via SIP/2.0/TCP [::1]:own-port and Contact ;transport=tcp on
#      [::1] on both legs.
#   5. One CDR per call, and the call table empty at the end.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"
grep -qi '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null || skip "no IPv6 loopback (::1)"

# ::1 is one address for every test: ports of this run's own (from its PID),
# checked free.
ADDR=::1
base=$((20000 + ($$ % 400) * 100))
SIP_PORT=$base
WORKER_PORT_BASE=$((base + 10))
UAS_PORT=$((base + 20))
_UAC_PORT_NEXT=$((base + 40))
if { ss -Huan; ss -Htan; } | awk '{print $4}' | grep -q "^\[::1\]:$((base / 100))[0-9][0-9]$"; then
	skip "ports $base-$((base + 99)) on [::1] in use"
fi
V6="[::1]"
PREFIX=b2bua:

redis_start
registrar_config
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$V6:$UAS_PORT;transport=udp\"; },
            { prefix = \"2\"; target = \"sip:$V6:$UAS_PORT;transport=tcp\"; }"
CFG_EXTRA="$CFG_EXTRA
transports = [ \"udp\", \"tcp\" ];
trusted = ( \"::1/128\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
assert_grep "worker 0 ready: sip \[::1\]:$SIP_PORT" "$T/b2bua.log" "the worker names its address in brackets"
for p in "$SIP_PORT" "$WORKER_PORT_BASE" $((WORKER_PORT_BASE + 1)); do
	_bound_at "$V6:$p" || fail "nothing bound on $V6:$p"
done
assert_eq "$CFG_WORKERS" "$(ss -Huan | awk '{print $4}' | grep -cxF "$V6:$SIP_PORT")" \
	"UDP sockets on the public port (one per worker)"
assert_eq "$CFG_WORKERS" "$(ss -Htln | awk '{print $4}' | grep -cxF "$V6:$SIP_PORT")" \
	"TCP listeners on the public port (one per worker)"
assert_eq "$V6:$SIP_PORT" "$(rcli HGET "${PREFIX}host:$(node_id)" sip)" \
	"this host's SIP address in Redis"

# ---------------------------------------------------------------- 1. register
add_user bob bobpw
uac_launch rb reg_auth ::1 "$V6:$SIP_PORT" -p "$UAS_PORT" -s bob -ap bobpw -m 1 \
	-key exp_hdr "Expires: 300" -key cparams ";q=1"
sipp_wait rb || fail "bob's REGISTER: sipp exited $?"
assert_seq "$T/rb.msg" "bob's registration" \
	"sent REGISTER" "recv 401/REGISTER" "sent REGISTER" "recv 200/REGISTER"
binding=$(rcli HGET "${PREFIX}loc:bob" "sip:bob@$V6:$UAS_PORT")
[ -n "$binding" ] || fail "no binding sip:bob@$V6:$UAS_PORT: $(rcli HKEYS "${PREFIX}loc:bob")"
assert_eq "$V6:$UAS_PORT" "$(jq -r .source <<<"$binding")" "the binding's source, in brackets"
assert_eq "$V6:$SIP_PORT" "$(jq -r .host_address <<<"$binding")" "the binding's host_address"

# ---------------------------------------------------------------- 2. a call over UDP
uas_start_at ::1 uas uas_basic -m 1
uac_launch uac uac_v6 ::1 "$V6:$SIP_PORT" -s bob -m 1 -d 1000
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the call ANSWERED"
cli_json calls '.[0]' >"$T/call.json"
assert_eq "sip:bob@$V6:$SIP_PORT" "$(jq -r .callee "$T/call.json")" "show calls: callee"
WORKER=$(jq -r .worker "$T/call.json")
OWN=$((WORKER_PORT_BASE + WORKER))
sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
assert_seq "$T/uac.msg" "caller (A-leg, UDP)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE"
assert_seq "$T/uas.msg" "bob (B-leg, UDP)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" "recv BYE" \
	"sent 200/BYE"
assert_eq "INVITE sip:bob@$V6:$UAS_PORT SIP/2.0" \
	"$(grep -a -m1 '^INVITE ' "$T/uas.msg" | tr -d '\r')" "the B-leg INVITE went to bob's binding"
assert_grep "^SIP/2.0/UDP \[::1\]:$OWN;" <(msg_header "$T/uas.msg" recv INVITE Via) \
	"the callee's INVITE: our Via on [::1], own port of worker $WORKER"
assert_grep "^<sip:$(node_id)@\[::1\]:$OWN;transport=udp>$" \
	<(msg_header "$T/uas.msg" recv INVITE Contact) "the callee's INVITE: our Contact on [::1]"
assert_grep "^<sip:$(node_id)@\[::1\]:$OWN;transport=udp>$" \
	<(msg_header "$T/uac.msg" recv 200 Contact) "the caller's 200: our Contact on [::1]"
assert_grep "^ACK sip:$(node_id)@\[::1\]:$OWN;transport=udp " <(grep -a '^ACK ' "$T/uac.msg") \
	"the caller's ACK went to our Contact"
assert_grep "^SIP/2.0/UDP \[::1\]:$OWN;" <(msg_header "$T/uas.msg" recv BYE Via) \
	"the BYE relayed to the callee: our Via on [::1]"
assert_no_leak "$T/uac.msg" "$T/uas.msg"
A_CID=$(call_ids "$T/uac.msg" sent)
wait_for 5 calls_empty || fail "show calls not empty after the call: $(cli show calls)"
log "ok: show calls empty after the UDP call"

# ---------------------------------------------------------------- 3. hand-over
# Without a domain from here ([::1] is the domain above, and a call to a
# user of the domain goes to the location service, not to the routes).
b2b_stop || fail "b2bua exit status $? on SIGTERM"
CFG_EXTRA="transports = [ \"udp\", \"tcp\" ];
trusted = ( \"::1/128\" );"
write_config
b2b_start
handed() { cli_json workers "[.[].$1] | add"; }
uas_start_at ::1 uas16 uas_basic -m 16
# sipp's built-in caller: every request to the public port, no setdest.
_sipp_common uac16
(cd "$T" && exec timeout $((SIPP_TIMEOUT + 30)) sipp -sn uac -i ::1 -p "$((base + 39))" \
	-s 1000 -m 16 -r 20 "${_SIPP_ARGS[@]}" "$V6:$SIP_PORT") >"$T/uac16.out" 2>&1 ||
	fail "uac16 exited $?"
uas_wait uas16
assert_sipp_ok uac16 16
# sipp's one socket lands on one worker (the kernel's hash of the source);
# the Call-IDs hash over both: P(no hand-over in 16 calls) = 2^-16.
assert_ge 1 "$(handed handed_out)" "datagrams handed over between the workers"
assert_eq "$(handed handed_out)" "$(handed handed_in)" "handed out = handed in"
assert_grep "^BYE sip:1000@\[::1\]:$SIP_PORT " <(grep -a '^BYE ' "$T/uac16.msg" | head -n1) \
	"the built-in caller sends its BYE to the public port"
wait_for 5 calls_empty || fail "show calls not empty after the 16 calls: $(cli show calls)"

# ---------------------------------------------------------------- 4. a call over TCP
uas_start_at ::1 uast uas_basic -m 1 -t t1
uac_launch uact uac_v6 ::1 "$V6:$SIP_PORT" -s 2000 -m 1 -d 2000 -t tn -max_socket 100
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "the TCP call ANSWERED"
T_WORKER=$(cli_json calls '.[0].worker')
T_OWN=$((WORKER_PORT_BASE + T_WORKER))
sipp_wait uact || fail "uact exited $?"
uas_wait uast
assert_sipp_ok uact 1
assert_sipp_ok uast 1
assert_grep "SIP/2.0/TCP \[::1\]:" <(msg_header "$T/uact.msg" recv 100 Via) \
	"the caller's INVITE came over TCP from [::1]"
assert_grep "^<sip:$(node_id)@\[::1\]:$T_OWN;transport=tcp>$" \
	<(msg_header "$T/uact.msg" recv 200 Contact) "the TCP caller's 200: our Contact on [::1]"
assert_grep "^SIP/2.0/TCP \[::1\]:$T_OWN;" <(msg_header "$T/uast.msg" recv INVITE Via) \
	"the TCP callee's INVITE: our Via over TCP on [::1]"
assert_grep "^<sip:$(node_id)@\[::1\]:$T_OWN;transport=tcp>$" \
	<(msg_header "$T/uast.msg" recv INVITE Contact) "the TCP callee's INVITE: our TCP Contact"
assert_seq "$T/uast.msg" "callee (B-leg, TCP)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" "recv BYE" \
	"sent 200/BYE"
T_CID=$(call_ids "$T/uact.msg" sent)

# ---------------------------------------------------------------- 5. the record
wait_for 5 calls_empty || fail "show calls not empty after the TCP call: $(cli show calls)"
log "ok: show calls empty at the end"
wait_cdrs 18
i=$(cdr_index ".a_call_id == \"$A_CID\"")
assert_cdr_fields "$i"
assert_cdr_id "$i" "$(jq -r .id "$T/call.json")" "$WORKER"
assert_cdr "$i" "caller=$(jq -r .caller "$T/call.json")" "callee=sip:bob@$V6:$SIP_PORT" \
	"answered_by=sip:bob@$V6:$UAS_PORT" "disposition=ANSWERED" "sip_code=200" \
	"hangup_by=caller" "host=$(node_id)" "worker=$WORKER"
assert_match '^sip:sipp@\[::1\]:[0-9]+$' "$(cdr_get "$i" caller)" "CDR caller on [::1]"
assert_cdr_times "$i"
i=$(cdr_index ".a_call_id == \"$T_CID\"")
assert_cdr "$i" "callee=sip:2000@$V6:$SIP_PORT" "disposition=ANSWERED" "sip_code=200" \
	"hangup_by=caller" "worker=$T_WORKER"
assert_eq 16 "$(jq '[.[] | select(.callee == "sip:1000@[::1]:'"$SIP_PORT"'" and .disposition == "ANSWERED")] | length' "$CDR_JSON")" \
	"CDRs of the 16 handed-over calls"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
