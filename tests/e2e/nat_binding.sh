#!/bin/bash
#
# nat_binding — a subscriber behind NAT, on one host (RFC 3581; see
# docs/architecture.md, "Subscribers behind NAT").
#
# bob's user agent registers from its real socket ($ADDR:$UAS_PORT) with a
# Contact and a Via (with ;rport) naming 192.0.2.1:5060, an address of
# TEST-NET-1 that nothing on this machine answers: a NAT'd phone.  Then:
#   - the 401 and 200 reached it: responses go to received/rport;
#   - the binding records the source, the host and its SIP address;
#   - a call to bob reaches that socket with Request-URI sip:bob@192.0.2.1:5060
#     (the Contact), and so do the ACK, the caller's re-INVITE and its ACK,
#     and the BYE, although bob's 200s name 192.0.2.1 as their Contact;
#   - with nat_keepalive_interval = 2, OPTIONS reach bob's socket every
#     2 s; carol, registered without NAT (Contact = source) from a
#     port where nobody answers, gets none and keeps her binding;
#   - a hand-off (X-B2bua-Handoff: bob, Request-URI bob's Contact) from a
#     trusted source is relayed to the binding's source with no CDR here
#     (the peer host writes it); one for a URI that is no binding of ours
#     gets 480; the header from a source that is not trusted gets 403;
#   - bob's user agent stops: after 3 unanswered keepalives its binding is
#     removed from Redis, logged and counted;
#   - a caller behind NAT (not trusted; Via and Contact name 192.0.2.1)
#     calls dave, who hangs up: dave's BYE reaches the caller at the address
#     its INVITE came from.

. "$(dirname "$0")/lib.sh"

PREFIX=b2bua:
NAT_CONTACT=192.0.2.1:5060
SIPP_TIMEOUT=20

redis_start
registrar_config
CFG_EXTRA="$CFG_EXTRA
register_min_expires = 1;
nat_keepalive_interval = 2;
trusted = ( \"$ADDR\" );"
write_config
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"
add_user bob bobpw
add_user carol carolpw
add_user dave davepw

# ---------------------------------------------------------------- REGISTER behind NAT
uac_run rb nat_reg -p "$UAS_PORT" -s bob -ap bobpw -m 1 -key exp_hdr "Expires: 3600" \
	-key contact "$NAT_CONTACT"
assert_count "$T/rb.msg" recv 401 1
assert_count "$T/rb.msg" recv 200 1
binding=$(rcli HGET "${PREFIX}loc:bob" "sip:bob@$NAT_CONTACT")
[ -n "$binding" ] || fail "bob's binding is missing"
assert_eq "$ADDR:$UAS_PORT" "$(jq -r .source <<<"$binding")" "the binding's source"
assert_eq "e2e-nat-binding" "$(jq -r .host <<<"$binding")" "the binding's host"
assert_eq "$ADDR:$SIP_PORT" "$(jq -r .host_address <<<"$binding")" "the host's SIP address"
# bob's UA answers from now on (its keepalives start 2 s after the REGISTER).
uas_start uas uas_nat -key contact "$NAT_CONTACT"
# carol: no NAT (Contact = source), on a port where nobody answers later.
uac_run rc reg_auth -p 5207 -s carol -ap carolpw -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""

# ---------------------------------------------------------------- a call to bob
cdrs0=$(rcli XLEN "${PREFIX}cdr")
uac_run uac uac_nat -m 1 -key ruri "sip:bob@$ADDR:$SIP_PORT" -key extra_hdr "X-Test: none"
assert_sipp_ok uac 1
assert_count "$T/uac.msg" recv 200/INVITE 2
assert_count "$T/uac.msg" recv 200/BYE 1
assert_eq "INVITE sip:bob@$NAT_CONTACT SIP/2.0" \
	"$(grep -a -m1 '^INVITE ' "$T/uas.msg" | tr -d '\r')" \
	"the B-leg's Request-URI is bob's Contact"
assert_count "$T/uas.msg" recv INVITE 2
assert_count "$T/uas.msg" recv ACK 2
assert_count "$T/uas.msg" recv BYE 1
log "ok: INVITE, ACK, re-INVITE, ACK and BYE reached bob's source address"
# ... from the public port, the one bob's NAT opened by registering there
# (a NAT that filters by address and port drops anything else): the top
# Via is the socket a request left from.
for m in INVITE ACK BYE; do
	assert_eq "$ADDR:$SIP_PORT" "$(msg_top_vias "$T/uas.msg" "$m")" "the top Via of every $m bob received"
done
wait_for 5 calls_empty || fail "the call is still in the table"
wait_for 5 eval '[ "$(rcli XLEN "${PREFIX}cdr")" -eq $((cdrs0 + 1)) ]' ||
	fail "one CDR expected for the call"

# ---------------------------------------------------------------- keepalives
wait_for 10 eval '[ "$(msg_count "$T/uas.msg" recv OPTIONS)" -ge 3 ]' ||
	fail "keepalive OPTIONS did not reach bob ($(msg_count "$T/uas.msg" recv OPTIONS))"
opt_ruri=$(grep -a -m1 '^OPTIONS ' "$T/uas.msg" | tr -d '\r')
assert_eq "OPTIONS sip:bob@$NAT_CONTACT SIP/2.0" "$opt_ruri" "the keepalive's Request-URI"
assert_eq "$ADDR:$SIP_PORT" "$(msg_top_vias "$T/uas.msg" OPTIONS)" "the top Via of the keepalives (sent from the public port)"
assert_ge 3 "$(stat_of keepalives_sent)" "keepalives counted"
assert_eq 0 "$(stat_of keepalives_failed)" "no keepalive failed while bob answers"

# ---------------------------------------------------------------- hand-off from a peer
# A trusted peer hands over a call for a binding held here: relayed to the
# binding's source, no authentication, no CDR on this host.
cdrs1=$(rcli XLEN "${PREFIX}cdr")
uac_run ho uac_nat -m 1 -key ruri "sip:bob@$NAT_CONTACT" -key extra_hdr "X-B2bua-Handoff: bob"
assert_sipp_ok ho 1
assert_count "$T/uas.msg" recv INVITE 4
assert_count "$T/uas.msg" recv BYE 2
assert_eq 1 "$(stat_of peer_relayed)" "the hand-off counted"
assert_grep "hand-off from a peer host" "$T/b2bua.log" "the hand-off logged"
wait_for 5 calls_empty || fail "the relayed call is still in the table"
sleep 0.5
assert_eq "$cdrs1" "$(rcli XLEN "${PREFIX}cdr")" "no CDR on the relaying host"
# A hand-off for a URI that is no binding of ours (carol's binding is
# sip:carol@$ADDR:5207, and not behind NAT): 480, nothing sent.
uac_run nob uac_expect_code -s carol -m 1 -key maxfwd 70 -key extra_hdr "X-B2bua-Handoff: carol"
assert_count "$T/nob.msg" recv 480 1
# The header from a source that is not trusted.
intruder=$(other_addr 1)
uac_start_from "$intruder" forged uac_expect_code -s bob -m 1 -key maxfwd 70 \
	-key extra_hdr "X-B2bua-Handoff: bob"
sipp_wait forged || fail "sipp forged exited $?"
assert_count "$T/forged.msg" recv 403 1
assert_count "$T/uas.msg" recv INVITE 4
assert_eq 1 "$(stat_of peer_relayed)" "the forged hand-off was not relayed"

# ---------------------------------------------------------------- bob goes away
sipp_stop uas
sent=$(stat_of keepalives_sent)
wait_for 20 eval '[ "$(rcli HEXISTS "${PREFIX}loc:bob" "sip:bob@$NAT_CONTACT")" = 0 ]' ||
	fail "bob's binding was not removed after his keepalives failed"
assert_grep "NAT binding sip:bob@$NAT_CONTACT of 'bob' \\(source $ADDR:$UAS_PORT\\): 3 keepalives unanswered" \
	"$T/b2bua.log" "the removal logged"
assert_eq 1 "$(stat_of bindings_removed)" "the removal counted"
assert_ge 3 "$(stat_of keepalives_failed)" "the failures counted"
assert_ge "$sent" "$(stat_of keepalives_sent)" "keepalives sent meanwhile"
# carol (not behind NAT) was never pinged: her binding stays.
assert_eq 1 "$(rcli HEXISTS "${PREFIX}loc:carol" "sip:carol@$ADDR:5207")" "carol's binding kept"
# A call to bob now finds nobody.
uac_run gone uac_expect_code -s bob -m 1 -key maxfwd 70 -key extra_hdr "X-Test: none"
assert_count "$T/gone.msg" recv 480 1

# ---------------------------------------------------------------- a caller behind NAT
# dave's UA has a port of its own: bob's last keepalive OPTIONS may still be
# retransmitted to bob's old port (an unanswered non-INVITE transaction runs
# for 32 s, RFC 3261 17.1.2.2, also after the binding was removed).
DAVE_PORT=$((UAS_PORT + 40))
uac_run rd reg_auth -p "$DAVE_PORT" -s dave -ap davepw -m 1 -key exp_hdr "Expires: 3600" \
	-key cparams ""
uas_start dave uas_send_bye -p "$DAVE_PORT" -m 1 -d 500
uac_start_from "$(other_addr 2)" natcaller uac_nat_recv_bye -m 1 \
	-key ruri "sip:dave@$ADDR:$SIP_PORT" -key contact "$NAT_CONTACT"
sipp_wait natcaller || fail "sipp natcaller exited $? (dave's BYE did not reach it?)"
uas_wait dave
assert_count "$T/natcaller.msg" recv 200/INVITE 1
assert_count "$T/natcaller.msg" recv BYE 1
assert_count "$T/dave.msg" recv 200/BYE 1
log "ok: the callee's BYE reached the NAT'd caller at its source address"

assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
