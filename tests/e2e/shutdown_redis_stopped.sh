#!/bin/bash
#
# shutdown_redis_stopped — SIGTERM while requests wait on a hung Redis.
#
# Redis is stopped (SIGSTOP: its socket stays open, nothing answers) and
# several user agents, from ports of their own so that both workers get
# some, send an authenticated REGISTER: each waits on Redis.  The daemon is
# then told to stop (SIGTERM to the master).  What must hold:
#   - every worker exits 0 (the master logs each exit) and the master too:
#     no crash in the shutdown (it used to be SIGSEGV: the REGISTER's
#     transaction was destroyed with the SIP agent, then the Redis callback
#     answered it);
#   - every REGISTER got its final answer, 503 with Retry-After, whether
#     from its redis_timeout or from the worker's stop;
#   - at least one worker stopped with commands still pending (so the path
#     that crashed was taken) and said so.

. "$(dirname "$0")/lib.sh"

SIPP_TIMEOUT=15
N=6
redis_start
registrar_config "auth_algorithms = [ \"MD5\" ];
redis_timeout = 1500;"
write_config
b2b_start
wait_for 5 redis_up || fail "the workers did not connect to Redis"
add_user alice secret

resume_redis() { kill -CONT "$REDIS_PID" 2>/dev/null; }
log "stopping redis-server (SIGSTOP, pid $REDIS_PID)"
kill -STOP "$REDIS_PID" || hard_error "cannot stop redis-server"
for ((i = 1; i <= N; i++)); do
	uac_start "reg$i" reg_auth_503 -m 1 -s alice -ap secret
done
sleep 0.2   # the REGISTERs are on their way; the stop comes at the next tick (<= 1 s)
log "SIGTERM to the master (pid $B2B_PID)"
b2b_stop 15
rc=$?
resume_redis
assert_eq 0 "$rc" "the master's exit status"

for ((i = 1; i <= N; i++)); do
	sipp_wait "reg$i" || fail "reg$i: no 503 with Retry-After ($(tail -n 3 "$T/reg$i.err" 2>/dev/null))"
	assert_count "$T/reg$i.msg" recv 503 1
done
log "ok: every REGISTER got 503 with Retry-After"

exits=$(grep -cE 'worker [0-9]+ \(pid [0-9]+\) exited$' "$T/b2bua.log")
assert_eq "$CFG_WORKERS" "$exits" "workers that exited 0"
assert_no_grep 'killed by signal|exited with status|nta_agent_destroy: destroying' \
	"$T/b2bua.log" "no crash, no transaction left to the SIP agent's teardown"
assert_grep 'closed with [0-9]+ commands? pending' "$T/b2bua.log" \
	"a worker stopped while commands waited on Redis"
log "PASS"
