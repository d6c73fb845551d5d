# shellcheck shell=bash
#
# bench/lib.sh — helpers shared by bench/run.sh, bench/compare.sh,
# bench/overload.sh and bench/register.sh.
#
# Design note.  Sourced, never run: it only sets the paths and constants
# below and defines functions; nothing starts until a script calls
# bench_begin.  The state lives in globals, as in the scripts before:
#   T            the temp dir (bench_begin), removed on success unless
#                B2BUA_BENCH_KEEP=1, kept and reported on failure;
#   PIDS         every process the script started, in start order; the
#                EXIT trap stops them newest first (TERM, then KILL);
#   B2B_PID, CHILD_PIDS, WORKER_PIDS, REDIS_PID, REDIS_SOCK, ADDR  set by the helpers;
#   UAS_PID, UAC_PID, UAC_RC, UAS_RC, UAC_WALL_MS and the call results
#   (CALLS_OK, CALLS_FAILED, ...)  set by the sipp helpers at the end;
#   BENCH_TRANSPORT (udp by default; bench_transport sets it) the SIP
#   transport of both legs of the call benches, which bench_call_config
#   and the sipp helpers follow;
#   BENCH_SUT_CPUS, BENCH_GEN_WRAP  the CPU pinning of B2BUA_BENCH_PIN
#   (bench_begin, bench_pin_sut), empty when it is not set.
# The sipp helpers are the one implementation of a measured call run
# (run.sh and compare.sh): a callee on ADDR:5080, a caller on ADDR:5090,
# each run in a directory of its own, and the figures read from there.
# Cleanup is by PID only: after the recorded PIDS, a worker that outlived
# its master is killed only if its PID is one we saw and it still runs the
# b2bua binary.  Every wait has a deadline.

top_srcdir=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
B2BUA=$top_builddir/b2bua/b2bua
# shellcheck disable=SC2034  # used by the scripts
CLI=$top_builddir/cli/b2bua-cli
# shellcheck disable=SC2034  # used by the scripts
SIPP_DIR=$top_srcdir/tests/sipp
# shellcheck disable=SC2034  # sipp -buff_size, used by the scripts
BUF=1048576
# shellcheck disable=SC2034  # used by the scripts
CLK_TCK=$(getconf CLK_TCK)
BENCH_TRANSPORT=udp
BENCH_SIPP_TP=()        # sipp's transport options for BENCH_TRANSPORT
BENCH_CONF_TP=          # b2bua config lines for BENCH_TRANSPORT
BENCH_SUT_CPUS=         # B2BUA_BENCH_PIN: the system under test's CPUs
BENCH_GEN_WRAP=()       # B2BUA_BENCH_PIN: taskset for the sipp processes

bench_uint() {  # VALUE MIN MAX: VALUE is a decimal integer in [MIN, MAX]
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}

bench_alive() {  # PID: running, not a zombie
	local st
	[ -r "/proc/$1/stat" ] || return 1
	# It may exit between the test above and the read: no message then.
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ "$st" != Z ] && [ "$st" != X ]
}

# shellcheck disable=SC2317  # called from the EXIT trap
bench_stop_pid() {  # PID GRACE
	local pid=$1 n=$((${2:-3} * 20))
	if bench_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		while bench_alive "$pid" && [ "$n" -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
		bench_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
}

# shellcheck disable=SC2317  # the EXIT trap
bench_cleanup() {
	local rc=$? i p exe
	trap - EXIT
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do bench_stop_pid "${PIDS[$i]}" 5; done
	exe=$(readlink -f "$B2BUA")
	for p in "${CHILD_PIDS[@]}"; do
		[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && kill -KILL "$p" 2>/dev/null
	done
	if [ "$rc" -ne 0 ] || [ "${B2BUA_BENCH_KEEP:-0}" = 1 ]; then
		echo "kept $T" >&2
		[ "$rc" -ne 0 ] && tail -n 20 "$T/b2bua.log" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}

bench_begin() {  # NAME: the temp dir $T (NAME.XXXXXX) and the cleanup traps
	T=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
	REDIS_SOCK=$T/redis.sock
	PIDS=()
	B2B_PID=
	REDIS_PID=
	WORKER_PIDS=()
	CHILD_PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 1' INT TERM HUP
	bench_pin_parse
	bench_warm_memory
}

# B2BUA_BENCH_PIN=SUT:GEN (CPU lists as taskset takes them, e.g. "1:0"):
# the system under test (b2bua, its redis-server; Kamailio in compare.sh)
# runs on the CPUs SUT, the sipp load generators on GEN.  Unset, everything
# shares every CPU, as before.  Pinned, sipp no longer takes CPU time from
# the system it measures (on the 2-core machine, the two sipp processes
# need 0.94 of a core at 6 000 calls/s: bench/README.md), so a system's
# highest clean rate is its own, bounded by its CPUs, not by what sipp
# leaves it; both systems of compare.sh get the same CPUs.
bench_pin_parse() {
	local pin=${B2BUA_BENCH_PIN:-} sut gen
	[ -n "$pin" ] || return 0
	if [[ ! "$pin" =~ ^([0-9,-]+):([0-9,-]+)$ ]]; then
		echo "B2BUA_BENCH_PIN=$pin: want SUT:GEN, two CPU lists, e.g. 1:0" >&2
		exit 2
	fi
	sut=${BASH_REMATCH[1]} gen=${BASH_REMATCH[2]}
	command -v taskset >/dev/null 2>&1 || { echo "taskset not found (util-linux)" >&2; exit 1; }
	if ! taskset -c "$sut" true 2>/dev/null || ! taskset -c "$gen" true 2>/dev/null; then
		echo "B2BUA_BENCH_PIN=$pin: no such CPU here ($(nproc) online)" >&2
		exit 2
	fi
	BENCH_SUT_CPUS=$sut
	BENCH_GEN_WRAP=(taskset -c "$gen")
	echo "pinned: system under test on CPU $sut, sipp on CPU $gen" >&2
}

# bench_pin_sut PID...: these processes, all their threads, and the
# children they fork later, on BENCH_SUT_CPUS (nothing when not pinned).
bench_pin_sut() {
	local p
	[ -n "$BENCH_SUT_CPUS" ] || return 0
	for p in "$@"; do
		taskset -a -p -c "$BENCH_SUT_CPUS" "$p" >/dev/null ||
			{ echo "taskset: cannot pin $p" >&2; exit 1; }
	done
}

# bench_warm_memory: touch the machine's free memory once per boot, so
# that the calls do not pay for it.  On a virtual machine the first touch
# of a guest page the hypervisor has not backed yet is slow: on the VM of
# 2026-12-07, 18 GiB took 60 s of system time (3.3 us a page), and a
# fresh VM's first `run.sh 2000 1` spent a quarter of the worker's time in
# clear_page_erms, at 319.5 us per call; right after this warm-up the same
# run cost 235.2 us per call (bench/README.md).  A host that has been up a
# while has its memory backed; a benchmark should see that host, and both
# systems of compare.sh alike.  Touches MemAvailable less 2 GiB, in 1 GiB
# pieces, all held at once, then frees them; remembered per boot in
# /dev/shm.  B2BUA_BENCH_WARM=0 skips it.
bench_warm_memory() {
	local boot mark
	[ "${B2BUA_BENCH_WARM:-1}" = 0 ] && return 0
	boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null) || return 0
	mark=/dev/shm/b2bua-bench-warm.$boot
	[ -e "$mark" ] && return 0
	command -v python3 >/dev/null 2>&1 || return 0
	echo "warming the machine's free memory (once per boot; B2BUA_BENCH_WARM=0 skips it)" >&2
	timeout 300 python3 - <<'PY' >&2 || return 0
import mmap, time
avail = 0
with open("/proc/meminfo") as f:
    for line in f:
        if line.startswith("MemAvailable:"):
            avail = int(line.split()[1]) * 1024
gib = max(0, avail // (1 << 30) - 2)
t0, held = time.monotonic(), []
for _ in range(gib):
    m = mmap.mmap(-1, 1 << 30)
    for off in range(0, 1 << 30, 4096):
        m[off] = 1
    held.append(m)
print("warmed %d GiB in %.1f s" % (gib, time.monotonic() - t0))
PY
	: >"$mark"
}

bench_udp_bound() {  # ADDR:PORT: some process has a UDP socket bound there
	ss -Huan | awk '{print $4}' | grep -qx "$1"
}

bench_tcp_listening() {  # ADDR:PORT: some process listens on TCP there
	ss -Htln | awk '{print $4}' | grep -qx "$1"
}

# bench_transport NAME: both legs of the call benches on NAME: udp (the
# default), or tcp (transports = ["udp", "tcp"], the route target
# ;transport=tcp, both sipp in multi-socket TCP mode, -t tn: the caller's
# scenario follows our Contact, a setdest that sipp's single-socket mode
# refuses).  Debian's sipp has no TLS: TLS is measured as a trunk between
# two b2bua hosts (bench/trunk.sh --transport tls; bench/README.md, "TLS").
# Returns 1 (with a message) for any other name.
bench_transport() {
	case $1 in
	udp)
		BENCH_SIPP_TP=()
		BENCH_CONF_TP= ;;
	tcp)
		# sipp in tn mode needs -max_socket below the descriptor limit.
		BENCH_SIPP_TP=(-t tn -max_socket $(($(ulimit -n) - 200)))
		# sipp -t tn opens a connection per call, all from one address:
		# far above the per-source default of a real network (100).
		BENCH_CONF_TP='transports = [ "udp", "tcp" ];
tcp_max_per_source = 4000; tcp_max_connections = 4000;' ;;
	tls)
		echo "transport tls: Debian's sipp has no TLS; measure it as a trunk" \
			"between two hosts: bench/trunk.sh --transport tls RATE" >&2
		return 1 ;;
	*)
		echo "unknown transport '$1' (udp, tcp)" >&2
		return 1 ;;
	esac
	BENCH_TRANSPORT=$1
}

# bench_sipp_bound ADDR:PORT: a sipp of the benches is ready there (its
# UDP socket bound, or its TCP socket listening).
bench_sipp_bound() {
	if [ "$BENCH_TRANSPORT" = udp ]; then bench_udp_bound "$1"; else bench_tcp_listening "$1"; fi
}

bench_pick_addr() {  # OCTET: ADDR = a 127.OCTET.x.1 nobody has a UDP socket on
	local n a
	ADDR=
	for ((n = 0; n < 200; n++)); do
		a="127.$1.$((($$ + n) % 250 + 1)).1"
		if ! ss -Huan | awk '{print $4}' | grep -q "^$a:"; then ADDR=$a; break; fi
	done
	[ -n "$ADDR" ] || { echo "no free loopback address" >&2; exit 1; }
}

bench_rcli() {  # ARGS...: redis-cli against the private redis-server, bounded
	timeout 30 redis-cli -s "$REDIS_SOCK" "$@"
}

# A private redis-server on $REDIS_SOCK, in $T, no persistence.  Returns 1,
# with the reason on stderr, if it exits or does not answer within 5 s.
bench_redis_start() {
	local deadline
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 --save "" \
		--appendonly no --daemonize no --dir "$T" >"$T/redis.log" 2>&1 &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	bench_pin_sut "$REDIS_PID"
	deadline=$((SECONDS + 5))
	until [ "$(bench_rcli ping 2>/dev/null)" = PONG ]; do
		bench_alive "$REDIS_PID" ||
			{ echo "redis-server exited during start-up" >&2; return 1; }
		[ "$SECONDS" -lt "$deadline" ] ||
			{ echo "redis-server not ready in 5 s" >&2; return 1; }
		sleep 0.05
	done
}

# bench_call_config RATE WORKERS [LINES]: $T/b2bua.conf for the call benches
# (run.sh, overload.sh): the caller on $ADDR is a trunk, trusted (no
# challenge, no per-source rate limit); numbers starting with 1 go to the
# callee on $ADDR:5080 over BENCH_TRANSPORT; the table holds 4 s of calls
# at RATE; CDRs go to the private redis-server.  LINES are added as they are.
bench_call_config() {
	cat >"$T/b2bua.conf" <<EOF
node_id = "bench";
redis_address = "unix:$REDIS_SOCK";
cdr_spool_dir = "$T/spool";
workers = $2;
drain_timeout = 5;
listen = "$ADDR";
sip_port = 5060;
worker_port_base = 5070;
call_capacity = $(($1 * 4 + 1024));
cli_socket = "$T/cli.sock";
log_level = "warn";
routes = ( { prefix = "1"; target = "sip:$ADDR:5080;transport=$BENCH_TRANSPORT"; } );
trusted = ( "$ADDR" );
$BENCH_CONF_TP
${3:-}
EOF
}

bench_workers_bound() {  # WORKERS: every worker's port 5070 + i on $ADDR is bound
	local p
	for ((p = 0; p < $1; p++)); do
		bench_udp_bound "$ADDR:$((5070 + p))" || return 1
	done
}

# WORKERS [READY...]: start b2bua on $T/b2bua.conf (log in $T/b2bua.log).
# It logs at warn, so readiness is seen from outside: every worker port
# bound, then the command READY... if given; at most 10 s.  Then
# CHILD_PIDS = its children, WORKER_PIDS = the workers among them, which
# must be WORKERS.  Exits 1 on
# failure.
bench_b2bua_start() {
	local workers=$1 deadline
	shift
	"$B2BUA" -c "$T/b2bua.conf" >"$T/b2bua.log" 2>&1 &
	B2B_PID=$!
	PIDS+=("$B2B_PID")
	deadline=$((SECONDS + 10))
	until bench_workers_bound "$workers" && { [ $# -eq 0 ] || "$@"; }; do
		bench_alive "$B2B_PID" || { echo "b2bua exited during start-up" >&2; exit 1; }
		[ "$SECONDS" -lt "$deadline" ] || { echo "b2bua not ready in 10 s" >&2; exit 1; }
		sleep 0.05
	done
	# Workers name themselves b2bua-wN; the master's other child is b2bua-mgmt.
	mapfile -t CHILD_PIDS < <(pgrep -P "$B2B_PID")
	mapfile -t WORKER_PIDS < <(pgrep -P "$B2B_PID" '^b2bua-w[0-9]+$')
	[ "${#WORKER_PIDS[@]}" -eq "$workers" ] ||
		{ echo "expected $workers workers, found ${#WORKER_PIDS[@]}" >&2; exit 1; }
	bench_pin_sut "$B2B_PID" "${CHILD_PIDS[@]}"
}

bench_stat_sum() {  # EXPR PID...: EXPR (awk, over the fields of /proc/PID/stat
	# after "pid (comm) ") summed over these processes
	local expr=$1 p sum=0 f
	shift
	for p in "$@"; do
		f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		sum=$((sum + $(echo "$f" | awk "{ print $expr }")))
	done
	echo "$sum"
}

bench_cpu_ticks() {  # PID...: utime + stime (clock ticks) of these processes
	bench_stat_sum '$12 + $13' "$@"
}

bench_minflt() {  # PID...: minor page faults of these processes so far
	bench_stat_sum '$8' "$@"
}

bench_sipp_stat() {  # FILE COLUMN: last value of a sipp -trace_stat column
	awk -F';' -v col="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		{ last = $c }
		END { print (c && last != "" ? last : 0) }' "$1" 2>/dev/null || echo 0
}

bench_pct() {  # P [FILE]: the P-th percentile of FILE (default $T/rtt.txt; nearest rank)
	awk -v p="$1" '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR
		print v[r] }' "${2:-$T/rtt.txt}"
}

bench_per() {  # MS N: MS milliseconds of CPU per N, in microseconds
	awk -v c="$1" -v n="$2" 'BEGIN { printf "%.1f", n ? c * 1000 / n : 0 }'
}

bench_forget() {  # PID: drop a process we waited for from PIDS (its PID may be reused)
	local i
	for i in "${!PIDS[@]}"; do [ "${PIDS[$i]}" = "$1" ] && unset 'PIDS[i]'; done
	PIDS=("${PIDS[@]}")
}

# ------------------------------------------------------------ a measured call run

# bench_sipp_uas DIR ADDR SCENARIO CALLS LIMIT: the callee on ADDR:5080,
# logging into DIR (uas.csv, uas.out), answering CALLS calls, ending by
# itself after LIMIT seconds at most.  UAS_PID; returns 1 if its port is
# not bound within 5 s.
bench_sipp_uas() {
	local dir=$1 addr=$2 sf=$3 calls=$4 limit=$5 deadline
	mkdir -p "$dir"
	(cd "$dir" && exec timeout $((limit + 15)) "${BENCH_GEN_WRAP[@]}" sipp -sf "$sf" -i "$addr" -p 5080 \
		-m "$calls" -nostdin -buff_size "$BUF" -ci "$addr" -timeout "${limit}s" \
		"${BENCH_SIPP_TP[@]}" \
		-timeout_error -trace_stat -stf "$dir/uas.csv" -fd 5) >"$dir/uas.out" 2>&1 &
	UAS_PID=$!
	PIDS+=("$UAS_PID")
	deadline=$((SECONDS + 5))
	until bench_sipp_bound "$addr:5080"; do
		[ "$SECONDS" -lt "$deadline" ] || { echo "sipp UAS did not start" >&2; return 1; }
		sleep 0.05
	done
}

# bench_sipp_uac_start DIR ADDR SCENARIO TARGET RATE CALLS TALK_MS LIMIT [ARG...]:
# the caller on ADDR:5090 places CALLS calls at RATE calls/s to TARGET
# (host:port), each TALK_MS long, in the background; its short message log
# (microsecond timestamps) goes to DIR.  UAC_PID, and UAC_T0 (ns).  ARGs
# are extra sipp options.
bench_sipp_uac_start() {
	local dir=$1 addr=$2 sf=$3 target=$4 rate=$5 calls=$6 talk=$7 limit=$8
	shift 8
	mkdir -p "$dir"
	UAC_T0=$(date +%s%N)
	(cd "$dir" && exec timeout $((limit + 15)) "${BENCH_GEN_WRAP[@]}" sipp -sf "$sf" -i "$addr" -p 5090 \
		-s 1000 -m "$calls" -r "$rate" -d "$talk" -l $((rate * 4 + 100)) \
		-nostdin -buff_size "$BUF" -ci "$addr" -timeout "${limit}s" -timeout_error \
		"${BENCH_SIPP_TP[@]}" "$@" -trace_stat -stf "$dir/uac.csv" -fd 5 -trace_shortmsg \
		"$target") >"$dir/uac.out" 2>&1 &
	UAC_PID=$!
	PIDS+=("$UAC_PID")
}

# bench_sipp_uac_wait: UAC_RC and UAC_WALL_MS (start to exit of the caller).
bench_sipp_uac_wait() {
	wait "$UAC_PID"
	UAC_RC=$?
	UAC_WALL_MS=$((($(date +%s%N) - UAC_T0) / 1000000))
	bench_forget "$UAC_PID"
}

bench_sipp_uas_wait() {  # UAS_RC
	wait "$UAS_PID"
	UAS_RC=$?
	bench_forget "$UAS_PID"
}

# bench_sipp_result DIR TALK_MS: the figures of the run in DIR: CALLS_OK,
# CALLS_FAILED (caller), UAS_FAILED, RETRANS_UAC, RETRANS_UAS, CALLS_DONE
# (ok + failed) and RATE_OK (successful calls per second of the caller's
# wall time less the last call's talk time: the set-up rate sustained);
# DIR/rtt.txt holds each call's INVITE→200 in ms, sorted, and DIR/rtt100.txt
# its 100→200 (our 100 Trying, sent when the INVITE arrives, to the relayed
# 200): over TCP (sipp -t tn) the caller's log leaves out the INVITE, written
# while its connection was connecting, so only the second exists there.
bench_sipp_result() {
	local dir=$1 talk=$2 setup_ms
	CALLS_OK=$(bench_sipp_stat "$dir/uac.csv" 'SuccessfulCall(C)')
	CALLS_FAILED=$(bench_sipp_stat "$dir/uac.csv" 'FailedCall(C)')
	UAS_FAILED=$(bench_sipp_stat "$dir/uas.csv" 'FailedCall(C)')
	RETRANS_UAC=$(bench_sipp_stat "$dir/uac.csv" 'Retransmissions(C)')
	RETRANS_UAS=$(bench_sipp_stat "$dir/uas.csv" 'Retransmissions(C)')
	# shellcheck disable=SC2034  # used by the scripts
	CALLS_DONE=$((CALLS_OK + CALLS_FAILED))
	setup_ms=$((UAC_WALL_MS > talk ? UAC_WALL_MS - talk : 1))
	RATE_OK=$(awk -v n="$CALLS_OK" -v ms="$setup_ms" 'BEGIN { printf "%.1f", n * 1000 / ms }')
	# INVITE→200 per call: first INVITE sent to first 200 (CSeq INVITE)
	# received, from the caller's short message log (tab-separated: date,
	# time, epoch seconds with microseconds, S|R, Call-ID, CSeq, first line).
	cat "$dir"/*_shortmessages.log 2>/dev/null | awk -F'\t' '
		$4 == "S" && $7 ~ /^INVITE / && !($5 in sent) { sent[$5] = $3 }
		$4 == "R" && $6 ~ / INVITE$/ && $7 ~ /^SIP\/2\.0 200/ && ($5 in sent) && !($5 in done) {
			done[$5] = 1; printf "%.3f\n", ($3 - sent[$5]) * 1000 }' | sort -n >"$dir/rtt.txt"
	cat "$dir"/*_shortmessages.log 2>/dev/null | awk -F'\t' '
		$4 == "R" && $6 ~ / INVITE$/ && $7 ~ /^SIP\/2\.0 100/ && !($5 in got) { got[$5] = $3 }
		$4 == "R" && $6 ~ / INVITE$/ && $7 ~ /^SIP\/2\.0 200/ && ($5 in got) && !($5 in done) {
			done[$5] = 1; printf "%.3f\n", ($3 - got[$5]) * 1000 }' | sort -n >"$dir/rtt100.txt"
}

# bench_clean CALLS RATE: the run just read by bench_sipp_result was clean:
# both sipp exited 0, all CALLS succeeded, 0 failed calls and 0
# retransmissions on either side, and the set-up rate sustained is at
# least 95 % of RATE (a caller that fell behind is not clean either).
bench_clean() {
	[ "$UAC_RC" -eq 0 ] && [ "$UAS_RC" -eq 0 ] && [ "$CALLS_OK" -eq "$1" ] &&
		[ "$CALLS_FAILED" -eq 0 ] && [ "$UAS_FAILED" -eq 0 ] &&
		[ "$RETRANS_UAC" -eq 0 ] && [ "$RETRANS_UAS" -eq 0 ] &&
		awk -v r="$RATE_OK" -v want="$2" 'BEGIN { exit !(r >= want * 0.95) }'
}

# ------------------------------------------------------------ system call counts

# The system calls counted one by one with perf (the rest are "other"): the
# ones a SIP worker, its ring, Sofia-SIP, hiredis and malloc make.
BENCH_SYSCALLS="io_uring_enter io_uring_register sendmsg recvmsg sendmmsg recvmmsg sendto
recvfrom getsockopt setsockopt getsockname ioctl epoll_wait epoll_pwait epoll_ctl poll ppoll
select pselect6 read write readv writev futex mmap munmap mremap brk madvise openat close
getpid gettid getrandom fcntl timerfd_settime clock_gettime clock_nanosleep nanosleep connect
socket kill rt_sigprocmask pread64 pwrite64 ftruncate fsync fdatasync lseek"

bench_perf_works() {  # perf can count syscall tracepoints here
	command -v perf >/dev/null 2>&1 &&
		perf stat -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1
}

# bench_syscalls_start OUT TOOL PID...: count the system calls of these
# processes (every thread) into OUT until bench_syscalls_stop.  TOOL perf:
# perf stat on raw_syscalls:sys_enter (the total) and on the tracepoints of
# BENCH_SYSCALLS, little overhead; strace: strace -c -f, every system call
# by name but each one slowed down; empty: perf where it works, else strace.
# SYSCALL_TOOL says which; returns 1 if the counter did not start.
bench_syscalls_start() {
	local out=$1 tool=$2 pids ev s p args=()
	shift 2
	[ -n "$tool" ] || { if bench_perf_works; then tool=perf; else tool=strace; fi; }
	SYSCALL_TOOL=$tool
	SYSCALL_OUT=$out
	pids=$(IFS=,; echo "$*")
	rm -f "$out"
	if [ "$tool" = perf ]; then
		ev=raw_syscalls:sys_enter
		for s in $BENCH_SYSCALLS; do ev+=",syscalls:sys_enter_$s"; done
		perf stat -x, -e "$ev" -o "$out" -p "$pids" 2>"$out.err" &
	else
		command -v strace >/dev/null 2>&1 || { echo "strace not found" >&2; return 1; }
		for p in "$@"; do args+=(-p "$p"); done
		strace -c -f -o "$out" "${args[@]}" 2>"$out.err" &
	fi
	SYSCALL_PID=$!
	PIDS+=("$SYSCALL_PID")
	# Both say nothing when attached: give them a second, then check.
	sleep 1
	bench_alive "$SYSCALL_PID" || { echo "$tool did not start: $(cat "$out.err")" >&2; return 1; }
}

# bench_syscalls_stop: stop the counter (SIGINT: both print their counts on
# it), then SYSCALL_TOTAL and $SYSCALL_OUT.tab ("count name" lines, most
# first, "other" for what perf did not count by name).
bench_syscalls_stop() {
	kill -INT "$SYSCALL_PID" 2>/dev/null
	local n=200
	while bench_alive "$SYSCALL_PID" && [ "$n" -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
	bench_stop_pid "$SYSCALL_PID" 3
	bench_forget "$SYSCALL_PID"
	if [ "$SYSCALL_TOOL" = perf ]; then
		awk -F, '$1 ~ /^[0-9]+$/ {
			if ($3 == "raw_syscalls:sys_enter") { total = $1; next }
			name = $3; sub(/^syscalls:sys_enter_/, "", name)
			if ($1 > 0) print $1, name; named += $1 }
			END { if (total > named) print total - named, "other" }' "$SYSCALL_OUT"
	else
		# strace -c: "% time seconds usecs/call calls [errors] syscall".
		awk '$1 ~ /^[0-9.]+$/ && $NF != "total" && NF >= 5 { print $4, $NF }' "$SYSCALL_OUT"
	fi | sort -k1,1nr >"$SYSCALL_OUT.tab"
	# shellcheck disable=SC2034  # used by the scripts
	SYSCALL_TOTAL=$(awk '{ s += $1 } END { print s + 0 }' "$SYSCALL_OUT.tab")
}

bench_syscalls_top() {  # N CALLS: the N most frequent, as "name per-call, ..."
	awk -v n="$1" -v c="$2" 'NR <= n { printf "%s%s %.1f", (NR > 1 ? ", " : ""), $2, (c ? $1 / c : 0) }' \
		"$SYSCALL_OUT.tab"
}
