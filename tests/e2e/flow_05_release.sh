#!/bin/bash
#
# flow_05_release — call flow 5, normal release and billing, by either side.
#
#   1. The callee hangs up after 2 s: its BYE is relayed to the caller (in
#      the caller's dialog), the caller's 200 is relayed back; the CDR says
#      hangup_by callee and bills about 2 s.
#   2. The caller hangs up after 1 s: the mirror image; hangup_by caller,
#      about 1 s billed.
#   3. A BYE for a dialog that never existed, and one replaying the
#      identifiers of call 2 after it ended, get 481 and write no CDR.
# The two calls run one after the other (static route), so CDR i is call i.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

SIPP_TIMEOUT=20
redis_start
b2b_start

# check_cdr I UAC-LOG UAS-LOG HANGUP-BY TALK-MS: CDR I is an answered call
# between those two peers, hung up by HANGUP-BY after about TALK-MS.
check_cdr() {
	local i=$1 a_cid b_cid
	a_cid=$(call_ids "$2" sent)
	b_cid=$(call_ids "$3" recv)
	assert_cdr_fields "$i"
	assert_match "^$(node_id)-w[01]-[0-9a-f]+-[0-9]+\$" "$(cdr_get "$i" id)" "CDR[$i].id"
	assert_cdr "$i" "a_call_id=$a_cid" "b_call_id=$b_cid" \
		"caller=$(from_uri "$2")" "callee=sip:1000@$ADDR:$SIP_PORT" \
		"answered_by=sip:1000@$ADDR:$UAS_PORT;transport=udp" "forwarded_to=" \
		"disposition=ANSWERED" "sip_code=200" "hangup_by=$4" "host=$(node_id)"
	assert_match '^[01]$' "$(cdr_get "$i" worker)" "CDR[$i].worker"
	assert_cdr_times "$i"
	assert_between "$(($5 - 100))" "$(($5 + 700))" "$(cdr_get "$i" billable_ms)" \
		"CDR[$i].billable_ms (~$5 ms of talk)"
}

# --- 1. the callee hangs up
uas_start uas1 uas_send_bye -m 1 -d 2000
uac_start uac1 uac_recv_bye -m 1
wait_state 5 'length == 1 and .[0].state == "ANSWERED"' "call 1 ANSWERED"
sipp_wait uac1 || fail "uac1 exited $?"
uas_wait uas1
assert_sipp_ok uac1 1
assert_sipp_ok uas1 1
assert_seq "$T/uac1.msg" "call 1 caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"recv BYE" "sent 200/BYE"
assert_seq "$T/uas1.msg" "call 1 callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"sent BYE" "recv 200/BYE"
# The relayed BYE belongs to the caller's dialog: its Call-ID, its tag in To.
assert_eq "$(call_ids "$T/uac1.msg" sent)" "$(msg_list "$T/uac1.msg" |
	awk '$1 == "recv" && $2 == "BYE" { print $4 }')" "call 1: BYE in the caller's dialog"
assert_grep 'tag=[0-9]+SIPpTag001' <(msg_header "$T/uac1.msg" recv BYE To) \
	"call 1: the BYE's To carries the caller's tag"
assert_no_leak "$T/uac1.msg" "$T/uas1.msg"
wait_for 5 calls_empty || fail "show calls not empty after call 1: $(cli show calls)"
wait_cdrs 1
check_cdr 0 "$T/uac1.msg" "$T/uas1.msg" callee 2000

# --- 2. the caller hangs up
uas_start uas2 uas_basic -m 1
uac_start uac2 uac_basic -m 1 -d 1000
sipp_wait uac2 || fail "uac2 exited $?"
uas_wait uas2
assert_sipp_ok uac2 1
assert_sipp_ok uas2 1
assert_seq "$T/uac2.msg" "call 2 caller" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" \
	"sent BYE" "recv 200/BYE"
assert_seq "$T/uas2.msg" "call 2 callee" \
	"recv INVITE" "sent 100/INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" \
	"recv BYE" "sent 200/BYE"
assert_no_leak "$T/uac2.msg" "$T/uas2.msg"
wait_for 5 calls_empty || fail "show calls not empty after call 2: $(cli show calls)"
wait_cdrs 2
check_cdr 1 "$T/uac2.msg" "$T/uas2.msg" caller 1000

# --- 3. BYEs for dialogs we do not have
uac_run stray1 flow_05_stray_bye -m 1 -key from_tag never-1 -key to_tag never-2
assert_seq "$T/stray1.msg" "BYE for a dialog that never existed" "sent BYE" "recv 481/BYE"
old_cid=$(call_ids "$T/uac2.msg" sent)
old_ftag=$(msg_header "$T/uac2.msg" sent BYE From | grep -o 'tag=[^;>]*' | head -n1 | cut -d= -f2)
old_ttag=$(msg_header "$T/uac2.msg" sent BYE To | grep -o 'tag=[^;>]*' | head -n1 | cut -d= -f2)
[ -n "$old_ftag" ] && [ -n "$old_ttag" ] || fail "no tags in call 2's BYE"
uac_run stray2 flow_05_stray_bye -m 1 -cid_str "$old_cid" \
	-key from_tag "$old_ftag" -key to_tag "$old_ttag"
assert_seq "$T/stray2.msg" "BYE replayed in call 2's ended dialog" "sent BYE" "recv 481/BYE"
assert_eq "$old_cid" "$(call_ids "$T/stray2.msg" sent)" "the replayed BYE used call 2's Call-ID"
sleep 0.5
assert_eq 2 "$(cdr_len)" "no CDR for the stray BYEs"
assert_eq 0 "$(cli_json calls 'length')" "show calls: no call from the stray BYEs"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
