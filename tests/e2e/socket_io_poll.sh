#!/bin/bash
#
# socket_io_poll — the fallback socket I/O (socket_io = "poll": the ring only
# polls, each datagram is a recvmsg/sendmsg system call) routes like the
# ring does: calls from ONE caller socket are spread over both workers (a
# hash of the Call-ID picks the owner, the datagram is handed over), and
# every in-dialog message of a call handed over reaches its owner.  The
# callee hangs up, so the daemon sends requests on both legs.

. "$(dirname "$0")/lib.sh"

N=200
CFG_EXTRA='socket_io = "poll";'

b2b_start
assert_eq "$CFG_WORKERS" "$(grep -c 'event loop io_uring, socket I/O poll' "$T/b2bua.log")" \
	"every worker runs the poll fallback"
uas_start uas uas_send_bye -m $N -d 1000
uac_start uac uac_recv_bye -m $N -r 100 -l $N

sipp_wait uac || fail "uac exited $? ($(sipp_stat uac 'FailedCall(C)') failed calls)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_count "$T/uac.msg" recv BYE $N
assert_count "$T/uas.msg" recv 200/BYE $N
# One source port, yet both workers created calls.
ports=$(msg_header "$T/uac.msg" sent INVITE Via | grep -o "$ADDR:[0-9]*" | sort -u | wc -l)
assert_eq 1 "$ports" "caller source ports"
for w in 0 1; do
	assert_ge $((N / 5)) "$(cli_json workers ".[] | select(.index == $w) | .calls_created")" \
		"calls created by worker $w"
done
assert_ge 1 "$(cli_json workers '[.[].handed_out] | add')" "datagrams handed over"
assert_eq "$(cli_json workers '[.[].handed_out] | add')" \
	"$(cli_json workers '[.[].handed_in] | add')" "every datagram handed over arrived"
calls_gone() { [ "$(stat_of calls_active)" = 0 ]; }
wait_for 5 calls_gone || fail "calls_active still $(stat_of calls_active)"
assert_eq $N "$(stat_of calls_answered)" "stats: calls_answered"
log "PASS"
