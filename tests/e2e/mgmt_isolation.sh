#!/bin/bash
#
# mgmt_isolation — the master only supervises.
#
# The CLI is served by the management process, not by the master.  Here
# redis-server is stopped with SIGSTOP (it still accepts connections, so
# every `b2bua-cli user ...` command keeps the management process waiting on
# Redis up to its per-reply timeout), and a loop of such commands keeps it
# busy.  While one of them waits, a worker is killed with SIGKILL: the
# master must have a new process for that index within 1 s (seen from /proc
# and the log: the CLI is busy), the kill and the restart must both fall
# inside one waiting command, calls placed meanwhile must all succeed, and
# once Redis is back the management process answers again, still the same
# process.  Then the management process itself is killed: it is restarted
# like a worker, and the CLI, the workers and the calls carry on.

. "$(dirname "$0")/lib.sh"

redis_start
b2b_start

ms() { echo $(($(date +%s%N) / 1000000)); }

# The pids of this run's children, from the log lines they write (role[pid]).
worker_pid() { grep -oE "worker $1\[[0-9]+\] info: worker $1 ready:" "$T/b2bua.log" |
	tail -n 1 | grep -oE '\[[0-9]+\]' | tr -d '[]'; }
mgmt_pid() { grep -oE 'mgmt\[[0-9]+\] info: management process ready' "$T/b2bua.log" |
	tail -n 1 | grep -oE '\[[0-9]+\]' | tr -d '[]'; }
wait_for 5 b2b_log_has 'management process ready' || fail "no 'management process ready' line"
mgmt=$(mgmt_pid)
victim=$(worker_pid 0)
[ -n "$mgmt" ] && alive "$mgmt" || fail "no management process"
[ -n "$victim" ] && alive "$victim" || fail "no pid for worker 0"
assert_eq "$B2B_PID" "$(awk '{print $4}' "/proc/$mgmt/stat")" "the management process is the master's child"

cli user add alice --password alice-pw >/dev/null || fail "user add alice (Redis up)"

log "stopping redis-server (pid $REDIS_PID) with SIGSTOP"
kill -STOP "$REDIS_PID"

# Keep the management process waiting on Redis: each command takes about
# the store's 1 s reply timeout and fails; its start and end are recorded.
(
	for i in 1 2 3 4 5 6 7 8; do
		echo "start $i $(ms)"
		timeout 10 "$CLI" -s "$CLI_SOCK" user show alice >"$T/busy.$i.out" 2>&1
		echo "end $i $(ms) $?"
	done
) >"$T/busy.log" &
busy=$!
_track "$busy"

# Background calls on the static route (no Redis needed to route them).
uas_start uas1 uas_basic -m 400
uac_start uac1 uac_basic -m 60 -r 20 -d 500 -t un -max_socket 100

# Kill worker 0 while the second command waits (the first may have found
# the management process still idle and started its connection).
wait_for 10 grep -q '^start 2 ' "$T/busy.log" || fail "the CLI loop did not start"
log "killing worker 0 (pid $victim) with SIGKILL"
t_kill=$(ms)
kill -KILL "$victim"
# The master's own log line says when it forked the new process.
wait_for 5 b2b_log_has "worker 0 restarted as pid [0-9]+" || fail "worker 0 not restarted"
line=$(grep -m1 -E "worker 0 restarted as pid [0-9]+" "$T/b2bua.log")
new=$(printf '%s\n' "$line" | grep -oE 'pid [0-9]+' | cut -d' ' -f2)
t_new=$(date -d "$(printf '%s\n' "$line" | cut -d' ' -f1)" +%s%3N)
log "worker 0 restarted as pid $new, $((t_new - t_kill)) ms after the kill"
[ $((t_new - t_kill)) -le 1000 ] || fail "worker 0 not restarted within 1 s"
wait_for 5 alive "$new" || fail "the new worker 0 (pid $new) is not running"
# Both moments fell inside one command that was waiting on Redis.
wait_for 10 grep -q '^end 2 ' "$T/busy.log" || fail "command 2 never ended"
start2=$(awk '$1 == "start" && $2 == 2 {print $3}' "$T/busy.log")
end2=$(awk '$1 == "end" && $2 == 2 {print $3}' "$T/busy.log")
log "command 2 waited from +$((start2 - t_kill)) to +$((end2 - t_kill)) ms around the kill"
[ "$start2" -le "$t_kill" ] && [ "$end2" -ge "$t_new" ] ||
	fail "the kill and the restart were not inside one waiting CLI command"
assert_grep 'redis' "$T/busy.2.out" "command 2 failed on Redis (it did wait on it)"

# Calls placed now, with Redis still stopped and the CLI still busy, all succeed.
sipp_wait uac1
log "background calls: $(sipp_stat uac1 'SuccessfulCall(C)') ok, $(sipp_stat uac1 'FailedCall(C)') failed"
uac_run uac2 uac_basic -m 40 -r 20 -t un -max_socket 100
assert_sipp_ok uac2 40

log "resuming redis-server"
kill -CONT "$REDIS_PID"
wait_gone "$busy" 30 || fail "the CLI loop did not end"
assert_eq "alice" "$(cli user show alice --json | jq -r .user)" "the CLI answers again"
assert_eq 1 "$(cli_json workers '.[] | select(.index == 0) | .restarts')" "worker 0 restarts"
assert_eq "$mgmt" "$(mgmt_pid)" "the management process never restarted"
alive "$mgmt" || fail "the management process died"

# The management process is supervised like a worker: killed, it comes
# back, and a client that connects meanwhile waits in the socket's backlog.
log "killing the management process (pid $mgmt) with SIGKILL"
kill -KILL "$mgmt"
assert_eq 2 "$(cli_json workers 'length')" "show workers, asked while the management process restarts"
wait_for 5 b2b_log_has "the management process restarted as pid [0-9]+" ||
	fail "the management process was not restarted"
new_mgmt=$(mgmt_pid)
[ -n "$new_mgmt" ] && [ "$new_mgmt" != "$mgmt" ] && alive "$new_mgmt" ||
	fail "no new management process (was $mgmt, now '$new_mgmt')"
assert_eq "$new" "$(cli_json workers '.[] | select(.index == 0) | .pid')" "the workers were not touched"
uac_run uac3 uac_basic -m 20 -r 20
assert_sipp_ok uac3 20
_stop "${SIPP_PID[uas1]}" 3
log "PASS"
