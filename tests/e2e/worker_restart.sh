#!/bin/bash
#
# worker_restart — the master supervises its workers.
#
# While calls run, one worker is killed with SIGKILL.  Within 1 s the
# master must have a new process for that index (new pid, restarts = 1,
# "restarted" in the log) while the other worker is untouched; calls placed
# afterwards must all succeed.  Calls that the dead worker owned and that
# were not answered yet may fail (worker_takeover.sh covers answered ones).

. "$(dirname "$0")/lib.sh"

b2b_start

# Background traffic: 1 s calls at 20 calls/s for 5 s.
uas_start uas1 uas_basic -m 100
uac_start uac1 uac_basic -m 100 -r 20 -d 1000
sleep 2

victim_idx=0
victim=$(cli_json workers ".[] | select(.index == $victim_idx) | .pid")
other=$(cli_json workers ".[] | select(.index != $victim_idx) | .pid")
[ "${victim:-0}" -gt 0 ] || fail "no pid for worker $victim_idx"
assert_eq 0 "$(cli_json workers ".[] | select(.index == $victim_idx) | .restarts")" \
	"worker $victim_idx restarts before the kill"
active=$(cli_json workers '[.[].active_calls] | add')
assert_ge 1 "$active" "calls up when the worker is killed"

log "killing worker $victim_idx (pid $victim) with SIGKILL"
t0=$(date +%s%N)
kill -KILL "$victim"
new=
while :; do
	elapsed=$((($(date +%s%N) - t0) / 1000000))
	new=$(cli_json workers ".[] | select(.index == $victim_idx) | .pid")
	if [ -n "$new" ] && [ "$new" != 0 ] && [ "$new" != "$victim" ]; then
		break
	fi
	[ "$elapsed" -le 1000 ] || fail "worker $victim_idx not restarted within 1 s (pid '$new')"
	sleep 0.05
done
log "worker $victim_idx restarted as pid $new after ${elapsed} ms"
alive "$new" || fail "new worker pid $new is not running"
assert_eq 1 "$(cli_json workers ".[] | select(.index == $victim_idx) | .restarts")" \
	"worker $victim_idx restarts"
assert_eq "$other" "$(cli_json workers ".[] | select(.index != $victim_idx) | .pid")" \
	"the other worker kept its pid"
assert_eq 0 "$(cli_json workers ".[] | select(.index != $victim_idx) | .restarts")" \
	"the other worker was not restarted"
wait_for 2 b2b_log_has 'restarted' || fail "no 'restarted' line in the log"
log "ok: log: $(grep -m1 'restarted' "$T/b2bua.log")"
# The restarted worker announces itself again.
ready=$(grep -c "worker $victim_idx ready:" "$T/b2bua.log")
assert_eq 2 "$ready" "'worker $victim_idx ready:' lines"

# The background traffic ends (some of its calls may have failed with the
# worker); it must not hang.
sipp_wait uac1
log "background traffic: $(sipp_stat uac1 'SuccessfulCall(C)') ok, $(sipp_stat uac1 'FailedCall(C)') failed"
_stop "${SIPP_PID[uas1]}" 3

# New calls all succeed, on both workers.
uas_start uas2 uas_basic -m 100
uac_run uac2 uac_basic -m 100 -r 50 -t un -max_socket 500
uas_wait uas2
assert_sipp_ok uac2 100
assert_sipp_ok uas2 100
alive "$B2B_PID" || fail "the master died"
assert_eq 1 "$(cli_json workers '[.[].restarts] | add')" "restarts in total"
log "PASS"
