#!/bin/bash
#
# reuseport — many callers, one public port, several workers.
#
# sipp with `-t un` gives every call a socket (a source port) of its own, so
# the kernel's SO_REUSEPORT hashing spreads new INVITEs over the workers.
# Every in-dialog message after that (ACK, the callee's BYE relayed to the
# caller, the 200s) must reach the worker that owns the call through its
# own port: one that reached another worker would fail its call.  The
# callee hangs up, so the daemon sends requests on both legs.

. "$(dirname "$0")/lib.sh"

N=200

b2b_start
uas_start uas uas_send_bye -m $N -d 2000
uac_start uac uac_recv_bye -m $N -r 50 -l $N -t un -max_socket 1000

# While calls are up, every worker must own some.
all_busy() {
	[ "$(cli_json workers '[.[] | select(.active_calls > 0)] | length')" = "$CFG_WORKERS" ]
}
wait_for 10 all_busy || fail "not every worker got calls: $(cli show workers)"
log "ok: every worker owns calls: $(cli_json workers '[.[].active_calls] | map(tostring) | join(" ")')"
cli_json calls '[.[].worker] | unique | length' >"$T/workers_seen"
assert_eq "$CFG_WORKERS" "$(cat "$T/workers_seen")" "show calls: calls on every worker"

sipp_wait uac || fail "uac exited $? ($(sipp_stat uac 'FailedCall(C)') failed calls)"
uas_wait uas
assert_sipp_ok uac $N
assert_sipp_ok uas $N
assert_count "$T/uac.msg" recv BYE $N
assert_count "$T/uas.msg" recv 200/BYE $N
# Many source ports were used, not one.
ports=$(msg_header "$T/uac.msg" sent INVITE Via | grep -o "$ADDR:[0-9]*" | sort -u | wc -l)
assert_ge 100 "$ports" "distinct caller source ports"

calls_gone() { [ "$(stat_of calls_active)" = 0 ]; }
wait_for 5 calls_gone || fail "calls_active still $(stat_of calls_active)"
assert_eq $N "$(stat_of calls_total)" "stats: calls_total"
assert_eq $N "$(stat_of calls_answered)" "stats: calls_answered"
assert_eq 0 "$(stat_of calls_failed)" "stats: calls_failed"
log "PASS"
