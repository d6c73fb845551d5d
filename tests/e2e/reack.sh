#!/bin/bash
#
# reack — the callee's 2xx again after b2bua ACKed it (its ACK was lost).
#
# b2bua lets a B-leg's INVITE transaction go as soon as it ACKs the 2xx
# (it would otherwise keep the INVITE and the 2xx for the whole call), so a
# retransmitted 2xx no longer finds the INVITE's transaction.  It must still
# be ACKed (NTA answers it from the ACK's own transaction), or the callee,
# which retransmits until it sees an ACK, would give up and hang up
# (RFC 3261 13.3.1.4); and it must not be taken for an orphan 2xx and
# released with BYE.  Asserted: the callee
# gets a second ACK for its repeated 200 (the scenario fails otherwise), the
# call stays up until the caller hangs up, and its CDR is a normal answered
# call hung up by the caller.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/flow_lib.sh"

redis_start
b2b_start

# -nr: sipp would take our second ACK (the same bytes as the first) for a
# retransmission and answer it with its 200 again, for ever.
uas_start uas uas_2xx_again -m 1 -nr
uac_start uac uac_basic -m 1 -d 2000

sipp_wait uac || fail "uac exited $?"
uas_wait uas
assert_sipp_ok uac 1
assert_sipp_ok uas 1

# assert_seq folds a repeated message into one: count them instead.
assert_seq "$T/uas.msg" "callee (B-leg)" \
	"recv INVITE" "sent 180/INVITE" "sent 200/INVITE" "recv ACK" "recv BYE" "sent 200/BYE"
assert_eq 2 "$(awk '/message sent/ { s = 1 } /message received/ { s = 0 }
	s && /^SIP\/2.0 / { st = $2 } s && /^CSeq: .* INVITE/ && st == 200 { n++ }
	END { print n + 0 }' "$T/uas.msg")" "the callee sent its 200 to the INVITE twice"
assert_eq 2 "$(grep -c '^ACK ' "$T/uas.msg")" "the callee got an ACK for each 200"
assert_seq "$T/uac.msg" "caller (A-leg)" \
	"sent INVITE" "recv 100/INVITE" "recv 180/INVITE" "recv 200/INVITE" "sent ACK" "sent BYE" \
	"recv 200/BYE"

wait_cdrs 1
assert_cdr 0 "disposition=ANSWERED" "sip_code=200" "hangup_by=caller"
assert_no_grep 'error:' "$T/b2bua.log" "no error in the daemon's log"
log "PASS"
