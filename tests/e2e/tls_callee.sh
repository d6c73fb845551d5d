#!/bin/bash
#
# tls_callee — a B-leg over TLS (issue 11, TLS): a route target
# ";transport=tls" to a TLS trunk.  Two b2bua hosts (multihost_lib.sh):
# host 1 takes the call from a sipp caller over UDP and routes it to
# sip:<host 2>:$TLS_PORT;transport=tls; host 2 (the TLS server) routes it
# to a sipp callee over UDP.  Both verify the other's certificate
# (tls_verify_peer, one CA made by the test), as a carrier trunk would.
# Asserted:
#   - the call goes through both hosts and back: each sipp party saw its
#     messages in order, the SDP crossed unchanged;
#   - during the call the B-leg of host 1 is a TCP connection from host 1
#     to host 2's public TLS port, and nothing else carries it: host 2
#     listens on UDP too, but its A-leg is the TLS connection (the call
#     could not have been set up otherwise, Sofia never falls back from TLS);
#   - host 2 owns the call on the worker that accepted the connection, and
#     no handshake failed on either host;
#   - one CDR per host (each is a B2BUA of its own), with the caller and
#     callee of the call;
#   - host 2 restarted with a certificate of another CA: host 1 refuses it
#     (handshake failed, counted, logged with the reason); Sofia
#     does not tell NTA, so the caller gets 408 when invite_timeout runs
#     out, as for a callee that does not answer.

. "$(dirname "$0")/lib.sh"
_here=$(dirname "$0")
. "$(dirname "$0")/multihost_lib.sh"
. "$(dirname "$0")/flow_lib.sh"
. "$(dirname "$0")/tls_lib.sh"

command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"
command -v curl >/dev/null || skip "curl not found (Debian package curl)"

MH_REGISTRAR=0
CFG_INVITE_TIMEOUT=6   # the refused callee below: its caller waits this long
mh_pick_addrs 2
H2=$(mh_addr 2)
# One server certificate for both hosts (Sofia compares no names).
tls_pki
redis_start

# Host 1 routes "1..." to host 2 over TLS; host 2 routes it to the callee.
tls_lines() {
	tls_config true
	echo "metrics_address = \"$(mh_addr "$1"):9464\";"
}
MH_CFG_EXTRA[1]=$(tls_lines 1)
MH_CFG_EXTRA[2]=$(tls_lines 2)
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$H2:$TLS_PORT;transport=tls\"; }"
mh_write_config 1
CFG_ROUTES="{ prefix = \"1\"; target = \"sip:$ADDR:$UAS_PORT;transport=udp\"; }"
mh_write_config 2
mh_start 1
mh_start 2

uas_start uas uas_basic -m 1
mh_uac_route 1 uac uac_basic -m 1 -d 3000

# --- during the call: the trunk is a TLS connection, host 1 -> host 2
_answered() { [ "$(mh_cli_json 2 calls 'length == 1 and .[0].state == "ANSWERED"')" = true ]; }
wait_for 5 _answered || fail "host 2 has no ANSWERED call"
ss -Htn state established "dst $H2:$TLS_PORT" >"$T/trunk.ss"
assert_grep "^[0-9]+ +[0-9]+ +$(mh_addr 1):[0-9]+ +$H2:$TLS_PORT" "$T/trunk.ss" \
	"host 1's B-leg: a connection to host 2's public TLS port"
mh_cli_json 2 calls '.[0]' >"$T/call2.json"
assert_grep "^sip:sipp@$ADDR" <(jq -r .caller "$T/call2.json") "host 2: the caller crossed the trunk"

sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1
assert_seq "$T/uac.msg" "caller (host 1's A-leg, UDP)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE"
assert_seq "$T/uas.msg" "callee (host 2's B-leg, UDP)" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_grep "^o=uac 53655765 " <(msg_body "$T/uas.msg" recv INVITE) \
	"the caller's offer crossed the TLS trunk"
assert_grep "SIP/2.0/UDP $H2:" <(msg_header "$T/uas.msg" recv INVITE Via) \
	"the callee got its INVITE from host 2"
log "ok: the call crossed a TLS trunk between two hosts"

for h in 1 2; do
	METRICS_URL="http://$(mh_addr "$h"):9464"
	assert_eq 0 "$(tls_metric b2bua_tls_handshake_failures_total)" \
		"host $h: no failed handshake"
done
_ended() { [ "$(mh_cli_json 1 calls length)" = 0 ] && [ "$(mh_cli_json 2 calls length)" = 0 ]; }
wait_for 5 _ended || fail "calls left in a call table"
_two_cdrs() { [ "$(mh_cdrs | wc -l)" = 2 ]; }
wait_for 5 _two_cdrs || fail "expected one CDR per host, got $(mh_cdrs | wc -l)"
assert_eq "host1 host2" "$(mh_cdrs | jq -r .host | sort | tr '\n' ' ' | sed 's/ $//')" \
	"one CDR from each host"
assert_eq "ANSWERED ANSWERED" "$(mh_cdrs | jq -r .disposition | tr '\n' ' ' | sed 's/ $//')" \
	"both CDRs: answered"
mh_stop 2

# --- host 2 shows a certificate another CA signed: host 1 refuses it
MH_CFG_EXTRA[2]="$(tls_lines 2 | sed -e "s|$T/pki/server.pem|$T/pki/rogue.pem|" \
	-e "s|$T/pki/server.key|$T/pki/rogue.key|")"
mh_write_config 2
mh_start 2
mh_uac_route 1 refused uac_expect_code -m 1 -key maxfwd 70 -key extra_hdr "X-Test: none"
sipp_wait refused || fail "the refused call's caller exited $?"
assert_eq 408 "$(grep -a -o '^SIP/2.0 [0-9]*' "$T/refused.msg" | tail -1 | cut -d' ' -f2)" \
	"the caller got 408 when invite_timeout ran out (the handshake failure is not told to NTA)"
METRICS_URL="http://$(mh_addr 1):9464"
assert_eq 1 "$(tls_metric b2bua_tls_handshake_failures_total)" \
	"host 1 counted its refusal of host 2's certificate"
# Host 2's side is not asserted: host 1 closes with host 2's last
# handshake records unread, so its kernel resets the connection, and Sofia
# closes a reset connection before OpenSSL sees the alert (tls_connect:
# the HUP/ERR event first): counted or not, by timing.
assert_grep "TLS handshake \(connect\) with $H2:$TLS_PORT failed: certificate verify failed" \
	"$(mh_log 1)" "host 1 logged why"
assert_eq 0 "$(mh_cli_json 2 calls length)" "no call reached host 2"
log "ok: a TLS callee whose certificate does not verify is refused, counted, and the caller gets 408"
mh_stop 1
mh_stop 2
log "PASS"
