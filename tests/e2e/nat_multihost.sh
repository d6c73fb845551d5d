#!/bin/bash
#
# nat_multihost — a subscriber behind NAT is reachable through every host
# (issue 10, items 4 and 5; docs/architecture.md, "Subscribers behind NAT").
#
# Three hosts share one Redis.  bob's user agent ($ADDR:$BOB_PORT) registers
# through host1 with a Contact and Via naming 192.0.2.1:5060 (TEST-NET-1,
# never answered): only host1 could get through bob's NAT.  Then:
#   1. a call via host2: host2 hands the B-leg to host1 (X-B2bua-Handoff),
#      host1 relays it to bob's source address: bob's socket gets the
#      INVITE, ACK, re-INVITE, ACK and the caller's BYE, each sent by host1
#      (the top Via, which a B2BUA writes itself, names host1's address);
#   2. a call via host3 that bob ends: bob's BYE reaches the caller, its 200
#      comes back to bob (through received/rport: his Via names 192.0.2.1);
#   3. exactly one CDR per call, written by the host the caller used (host2,
#      host3), none by host1, which counts the hand-offs (peer_relayed);
#   4. host1 keeps bob's NAT binding open: keepalive OPTIONS from host1
#      reach bob's socket; host2 and host3 send none.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/multihost_lib.sh"

HOSTS=3
BOB_PORT=5084
NAT_CONTACT=192.0.2.1:5060
SIPP_TIMEOUT=20
MH_CFG_EXTRA_ALL="nat_keepalive_interval = 2; host_lease = 4000;"

# top_via_hosts LOG METHOD: the host of the top Via of every METHOD received.
top_via_hosts() { msg_top_vias "$1" "$2" | sed 's/:[0-9]*$//' | sort -u; }

# from_host1 LOG METHOD: every METHOD bob's socket received was sent by host1.
from_host1() {
	assert_eq "$(mh_addr 1)" "$(top_via_hosts "$T/$1.msg" "$2")" "$1: every $2 came from host1"
}

mh_redis_start
mh_start_all "$HOSTS"
wait_for 5 mh_all_redis_up "$HOSTS" || fail "not every host's workers connected to Redis"
mh_add_user bob bobpw

# ---------------------------------------------------------------- REGISTER via host1
mh_uac_run 1 rb nat_reg -p "$BOB_PORT" -s bob -ap bobpw -m 1 -key exp_hdr "Expires: 3600" \
	-key contact "$NAT_CONTACT"
assert_count "$T/rb.msg" recv 200 1
binding=$(rcli HGET "${MH_PREFIX}loc:bob" "sip:bob@$NAT_CONTACT")
assert_eq "$ADDR:$BOB_PORT" "$(jq -r .source <<<"$binding")" "the binding's source"
assert_eq host1 "$(jq -r .host <<<"$binding")" "the binding's host"
assert_eq "$(mh_addr 1):$SIP_PORT" "$(jq -r .host_address <<<"$binding")" \
	"the binding names host1's SIP address"

# ---------------------------------------------------------------- 1. via host2, the caller hangs up
uas_start u2 uas_nat -p "$BOB_PORT" -key contact "$NAT_CONTACT"
mh_uac_run 2 c2 uac_nat -m 1 -key ruri "sip:bob@$ADDR:$SIP_PORT" -key extra_hdr "X-Test: none"
assert_sipp_ok c2 1
assert_count "$T/c2.msg" recv 200/INVITE 2
assert_count "$T/c2.msg" recv 200/BYE 1
assert_count "$T/u2.msg" recv INVITE 2
assert_count "$T/u2.msg" recv ACK 2
assert_count "$T/u2.msg" recv BYE 1
assert_eq "INVITE sip:bob@$NAT_CONTACT SIP/2.0" \
	"$(grep -a -m1 '^INVITE ' "$T/u2.msg" | tr -d '\r')" "the Request-URI is bob's Contact"
for m in INVITE ACK BYE; do from_host1 u2 "$m"; done
sipp_stop u2

# ---------------------------------------------------------------- 2. via host3, bob hangs up
uas_start u3 uas_nat_bye -p "$BOB_PORT" -key contact "$NAT_CONTACT" -d 500
mh_uac_run 3 c3 uac_recv_bye -s bob -m 1
assert_sipp_ok c3 1
assert_count "$T/c3.msg" recv BYE 1
assert_count "$T/u3.msg" recv INVITE 1
assert_count "$T/u3.msg" recv ACK 1
wait_for 5 eval '[ "$(msg_count "$T/u3.msg" recv 200/BYE)" = 1 ]' ||
	fail "bob's BYE got no 200 back (received/rport)"
for m in INVITE ACK; do from_host1 u3 "$m"; done

# ---------------------------------------------------------------- 4. keepalives from host1
wait_for 8 eval '[ "$(msg_count "$T/u3.msg" recv OPTIONS)" -ge 1 ]' ||
	fail "no keepalive OPTIONS reached bob"
from_host1 u3 OPTIONS
sipp_stop u3
assert_eq 0 "$(mh_stat 2 keepalives_sent)" "host2 sends no keepalives"
assert_eq 0 "$(mh_stat 3 keepalives_sent)" "host3 sends no keepalives"
assert_ge 1 "$(mh_stat 1 keepalives_sent)" "host1 keeps bob's binding open"

# ---------------------------------------------------------------- 3. one CDR per call
cdrs_at_least() { [ "$(mh_cdrs | wc -l)" -ge "$1" ]; }
wait_for 10 cdrs_at_least 2 || fail "the two calls' CDRs are not in the stream"
sleep 1   # a third (host1 writing one too) would come now
mh_cdrs >"$T/cdrs.jsonl"
assert_eq 2 "$(wc -l <"$T/cdrs.jsonl")" "CDRs in the stream"
assert_eq "$(call_ids "$T/c2.msg" sent)" \
	"$(jq -r 'select(.host == "host2") | .a_call_id' "$T/cdrs.jsonl")" "host2 wrote the CDR of call 1"
assert_eq "$(call_ids "$T/c3.msg" sent)" \
	"$(jq -r 'select(.host == "host3") | .a_call_id' "$T/cdrs.jsonl")" "host3 wrote the CDR of call 2"
assert_eq 2 "$(jq -r 'select(.disposition == "ANSWERED") | .id' "$T/cdrs.jsonl" | wc -l)" \
	"both CDRs are answered calls"
assert_eq 2 "$(mh_stat 1 peer_relayed)" "host1 relayed the two hand-offs"
assert_eq 0 "$(mh_stat 2 peer_relayed)" "host2 relayed nothing"
mh_log_has 1 "hand-off from a peer host" || fail "host1 did not log the hand-offs"

# ---------------------------------------------------------------- 5. the holding host dies
# Only host1's port gets through bob's NAT: once host1's lease ran out, a
# call to bob through host2 is answered 480 at once (not tried until the
# INVITE times out), and says why in the log.
mh_kill 1
# (lost, or stopped: its management process may see the master go first
# and mark the host stopped on its way out; neither relays anything)
host1_lost() {
	case "$(mh_cli_json 2 hosts '.[] | select(.node_id == "host1") | .state')" in
	lost | stopped) return 0 ;;
	*) return 1 ;;
	esac
}
wait_for 12 host1_lost || fail "host2 does not see host1 lost: $(mh_cli 2 show hosts)"
t0=$SECONDS
mh_uac_start 2 c5 uac_expect_code -s bob -m 1 -key maxfwd 70 -key extra_hdr "X-Test: none"
sipp_wait c5
assert_count "$T/c5.msg" recv 480 1
assert_eq 0 "$(msg_count "$T/c5.msg" recv 408)" "no 408: the dead holding host was not tried"
[ $((SECONDS - t0)) -le 5 ] || fail "the 480 took $((SECONDS - t0)) s"
mh_log_has 2 "'bob' at sip:bob@$NAT_CONTACT is behind NAT and registered through host host1, which is lost: skipped" ||
	fail "host2 did not log why bob was skipped"

for h in 2 3; do
	! grep -Eq "(error|crit)" "$(mh_log "$h")" || fail "host $h logged an error"
done
log "PASS"
