#!/bin/bash
#
# tls_call — a softphone on TLS calls a UDP callee through b2bua (issue 11,
# TLS): a headless baresip (Debian's baresip-core, driven as in
# baresip_call.sh through tests/e2e/baresip_ctrl.py) with a certificate of
# the test's CA (tls_lib.sh), a sipp callee on UDP behind a static route.
# Asserted:
#   - alice registers over TLS to the public TLS port with digest (401,
#     then 200, both over TLS in baresip's SIP trace, -s): Redis holds her
#     binding, its source the TLS connection's address;
#   - she calls bob, a sipp UA registered over UDP: her INVITE is
#     challenged (407) and answered; the call table shows it ANSWERED, and
#     the 200 she got carries our Contact ;transport=tls on the own TLS
#     port of the call's worker, where her re-INVITEs go over TLS;
#   - she holds and resumes: the callee gets re-INVITEs over UDP offering
#     a=sendonly (or inactive) and then a=sendrecv, and the call table says
#     HELD in between, then ANSWERED again;
#   - she hangs up: the callee gets the BYE, the table empties, and the CDR
#     says ANSWERED alice -> bob, hung up by the caller;
#   - no TLS handshake failed, and the daemon logged no error.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"
. "$(dirname "$0")/tls_lib.sh"

command -v baresip >/dev/null 2>&1 ||
	skip "baresip not found (Debian package baresip-core: apt-get install baresip-core)"
command -v curl >/dev/null || skip "curl not found (Debian package curl)"
command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"
PYTHON=$(command -v /usr/bin/python3 || command -v python3) || skip "python3 not found"
CTRL=$top_srcdir/tests/e2e/baresip_ctrl.py
PREFIX=b2bua:
MPORT=9464
METRICS_URL="http://$ADDR:$MPORT"

declare -A PHONE_PID=() PHONE_CTRL=()

# phone_start NAME SIP_PORT CTRL_PORT RTP_PORT PASSWORD: a baresip for
# sip:NAME@$ADDR registering over TLS (its account says transport=tls, so
# it registers to $ADDR:5061), with a client certificate of the test's CA
# and that CA as the one it trusts.  It listens on SIP_PORT (UDP, TCP) and
# SIP_PORT + 1 (TLS).
phone_start() {
	local name=$1 sip=$2 ctrl=$3 rtp=$4 pw=$5 dir=$T/$1
	mkdir -p "$dir"
	cat "$T/pki/client.pem" "$T/pki/client.key" >"$dir/cert.pem"
	cat >"$dir/config" <<EOF
poll_method		epoll
sip_listen		$ADDR:$sip
sip_certificate		$dir/cert.pem
sip_cafile		$T/pki/ca.pem
net_interface		$ADDR
call_local_timeout	30
call_max_calls		2
audio_player		aubridge,$name
audio_source		ausine,440
audio_alert		aubridge,$name
ausrc_srate		48000
auplay_srate		48000
ausrc_channels		2
rtp_ports		$rtp-$((rtp + 9))
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module			ctrl_tcp.so
module_tmp		account.so
module_app		menu.so
ctrl_tcp_listen		$ADDR:$ctrl
EOF
	printf '<sip:%s@%s;transport=tls>;auth_pass=%s;answermode=auto;regint=600\n' \
		"$name" "$ADDR" "$pw" >"$dir/accounts"
	baresip -s -f "$dir" </dev/null >"$T/$name.out" 2>&1 &
	PHONE_PID[$name]=$!
	PHONE_CTRL[$name]=$ctrl
	_track "$!"
}

phone() { timeout 10 "$PYTHON" "$CTRL" "$ADDR" "${PHONE_CTRL[$1]}" "${@:2}"; }
phone_ctrl_up() { phone "$1" reginfo >/dev/null 2>&1; }
registered() {
	[ "$(rcli HLEN "${PREFIX}loc:$1")" = 1 ] &&
		rcli HVALS "${PREFIX}loc:$1" | grep -q '"user_agent":"baresip '
}
call_state() { cli_json calls 'if length == 1 then .[0].state else "" end'; }
state_is() { [ "$(call_state)" = "$1" ]; }

tls_pki
redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
$(tls_config false)
metrics_address = \"$ADDR:$MPORT\";"
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
out=$(cli user add alice --display Alice) || fail "user add alice: $out"
PW=$(printf '%s\n' "$out" | sed -n "s/^user alice added; password: //p")
[ -n "$PW" ] || fail "user add printed no password: '$out'"
add_user bob bobpw
# bob: a sipp UA on UDP, registered from the port it answers on.
uac_run rb reg_auth -p "$UAS_PORT" -s bob -ap bobpw -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""

# ---------------------------------------------------------------- register over TLS
phone_start alice 5201 4401 16000 "$PW"
wait_for 20 phone_ctrl_up alice || fail "baresip alice: ctrl_tcp does not answer"
wait_for 15 registered alice ||
	fail "baresip alice did not register: $(grep -a -m5 -E 'reg:|Register|[0-9]{3} |tls|TLS' "$T/alice.out")"
ss -Htn state established "dst $ADDR:$TLS_PORT" >"$T/reg.ss"
# (libre does not bind its connections to net_interface: the source is
# whatever address the kernel picks, 127.0.0.1 on loopback.)
assert_grep "^[0-9]+ +[0-9]+ +[0-9.]+:[0-9]+ +$ADDR:$TLS_PORT" "$T/reg.ss" \
	"alice's connection to the public TLS port is up"
src=$(awk 'NR == 1 { print $3 }' "$T/reg.ss")
binding=$(rcli HVALS "${PREFIX}loc:alice")
assert_grep "\"source\":\"$src\"" <(printf '%s\n' "$binding") \
	"the binding's source is alice's TLS connection"
assert_grep "REGISTER 'alice' from $src: 1 bindings" "$T/b2bua.log" \
	"the REGISTER came over that connection"
# the trace (-s) checks 401 below
log "ok: alice registered over TLS with digest (binding transport: $(printf '%s' "$binding" | jq -r .transport))"

# baresip's SIP trace (-s): the 401, then the 200, both over TLS.
awk '/^SIP\/2.0 401/ { c = 1 } /^SIP\/2.0 200/ && c { print "ok"; exit }' "$T/alice.out" |
	grep -q ok || fail "alice's trace: no 401 followed by a 200"
assert_grep "^Via: SIP/2.0/TLS" <(grep -a -A2 "^SIP/2.0 401" "$T/alice.out") \
	"the 401 came back over TLS"

# ---------------------------------------------------------------- call a UDP subscriber
uas_start uas uas_hold -m 1
phone alice dial "sip:bob@$ADDR" >/dev/null || fail "baresip alice refused to dial"
wait_for 15 state_is ANSWERED || fail "no ANSWERED call (state '$(call_state)')"
cli_json calls '.[0]' >"$T/call.json"
assert_eq "sip:alice@$ADDR" "$(jq -r .caller "$T/call.json")" "show calls: the caller"
WORKER=$(jq -r .worker "$T/call.json")
wait_for 5 grep -aq "Call established: sip:bob@$ADDR" "$T/alice.out" ||
	fail "baresip alice does not say the call is established"
assert_ge 1 "$(stat_of 'final_codes["407"]')" "alice's INVITE was challenged (407)"
OWN_TLS=$((TLS_WORKER_PORT_BASE + WORKER))
assert_grep "^Contact: <sip:[^>]*@$ADDR:$OWN_TLS;transport=tls>" \
	<(grep -a -A12 "^SIP/2.0 200 OK" "$T/alice.out") \
	"alice's 200: our Contact, ;transport=tls on worker $WORKER's own TLS port"
log "ok: alice (TLS) -> bob (UDP) answered on worker $WORKER"

# ---------------------------------------------------------------- hold and resume
phone alice hold >/dev/null || fail "baresip alice refused to hold"
wait_for 10 state_is HELD || fail "the call is not HELD (state '$(call_state)')"
# Her re-INVITE went to our Contact, over TLS, on a connection of its own.
assert_grep "^INVITE sip:[^ ]*@$ADDR:$OWN_TLS;transport=tls SIP/2.0" \
	<(grep -a -A1 -E "^TLS [0-9.]+:[0-9]+ -> $ADDR:$OWN_TLS" "$T/alice.out") \
	"alice's hold re-INVITE went over TLS to worker $WORKER's own TLS port"
phone alice resume >/dev/null || fail "baresip alice refused to resume"
wait_for 10 state_is ANSWERED || fail "the call did not come back from hold (state '$(call_state)')"
log "ok: held and resumed"

# ---------------------------------------------------------------- hang up
phone alice hangup >/dev/null || fail "baresip alice refused to hang up"
uas_wait uas
assert_sipp_ok uas 1
assert_seq "$T/uas.msg" "callee (B-leg, UDP)" \
	"recv INVITE" "sent 100/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"recv INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_grep "^a=(sendonly|inactive)" <(msg_body "$T/uas.msg" recv INVITE 2) \
	"the callee's second INVITE: the hold offer"
assert_grep "^a=sendrecv" <(msg_body "$T/uas.msg" recv INVITE 3) \
	"the callee's third INVITE: the resume offer"
wait_for 10 calls_empty || fail "the call did not leave the table"
cdr=$(cli cdr tail 1 --json) || fail "cdr tail failed"
assert_eq "ANSWERED 200 sip:alice@$ADDR sip:bob@$ADDR;transport=tls caller" \
	"$(printf '%s' "$cdr" | jq -r '.[0] | "\(.disposition) \(.sip_code) \(.caller) \(.callee) \(.hangup_by)"')" \
	"CDR: answered alice -> bob (the Request-URI she sent), hung up by the caller"

# ---------------------------------------------------------------- the reverse: UDP -> TLS
# A call to alice must reach her over the connection she registered on
# (libre listens on TLS too, but the binding's source is the connection):
# that is the registration's flow (docs/architecture.md, "Flows in
# registrations"), recorded in the binding by the registrar.
[ -n "$(printf '%s' "$binding" | jq -r '.flow // empty')" ] ||
	fail "alice's binding records no flow: $binding"
assert_eq tls "$(printf '%s' "$binding" | jq -r .transport)" "alice's binding: transport tls"
# bob calls her from his UDP UA (he authenticates: his From is local).
uac_run uac2 uac_auth -s alice -m 1 -d 2000 -key from bob -au bob -ap bobpw \
	-auth_uri "alice@$ADDR:$SIP_PORT"
assert_sipp_ok uac2 1
assert_grep "^INVITE sip:alice-[^ ]*;transport=tls SIP/2.0" \
	<(grep -a -A1 -E "^TLS $ADDR:[0-9]+ -> " "$T/alice.out") \
	"alice got the INVITE over TLS"
assert_grep "^Contact: <sip:[^>]*@$ADDR:[0-9]+;transport=tls>" \
	<(grep -a -A12 "^INVITE sip:alice-" "$T/alice.out") \
	"the INVITE to alice: our Contact ;transport=tls"
wait_for 10 calls_empty || fail "the reverse call did not leave the table"
cdr=$(cli cdr tail 1 --json) || fail "cdr tail failed"
assert_eq "ANSWERED sip:bob@$ADDR sip:alice@$ADDR:$SIP_PORT caller" \
	"$(printf '%s' "$cdr" | jq -r '.[0] | "\(.disposition) \(.caller) \(.callee) \(.hangup_by)"')" \
	"CDR: bob (UDP) -> alice (TLS), answered, hung up by bob"
log "ok: bob (UDP) reached alice over her TLS connection"

assert_eq 0 "$(tls_metric b2bua_tls_handshake_failures_total)" "no failed TLS handshake"
assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
