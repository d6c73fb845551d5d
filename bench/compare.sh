#!/bin/bash
#
# bench/compare.sh [RATE...] — b2bua with one worker against Kamailio (tm +
# rr + dialog, one UDP worker) under the same sipp load, rate by rate.
#
# Design note.  Both systems run side by side for the whole run, each on a
# loopback address of its own: b2bua (1 worker, the config of run.sh but a
# 4 MiB receive buffer, as Kamailio gets) on
# 127.250.x.1, Kamailio (bench/kamailio.cfg, `-n 1`: one UDP receiver
# process; its main, timer and other helper processes are counted too) on
# 127.252.x.1, with the callee (sipp UAS) on port 5080 and the caller (sipp
# UAC) on 5090 of the same address.  For each RATE of the ladder, in turn:
# b2bua at RATE, then Kamailio at RATE, so that whatever else the machine
# does falls on both alike.  A step places RATE × B2BUA_BENCH_STEP_S
# (default 10) calls of 1 s (INVITE/100/180/200/ACK, 1 s, BYE/200), and
# every sipp is bounded in time.  b2bua gets tests/sipp/uac_basic.xml and
# uas_basic.xml, as in run.sh; Kamailio the same messages with the route set
# a record-routing proxy needs (bench/uac_proxied.xml, uas_proxied.xml).
# A step is clean when every call succeeded, with 0 failed calls and 0
# retransmissions on both sipp sides, and the set-up rate sustained was at
# least 95 % of RATE (bench_clean in lib.sh); for b2bua every call must
# also have left its CDR in Redis.  A system that fails two steps in a row
# is not offered higher rates.  CPU per call is utime + stime of all the
# system's processes (/proc/PID/stat) during the step, divided by the
# calls.  The measuring code is run.sh's, in bench/lib.sh.
# KAMAILIO names the binary (default /usr/sbin/kamailio), KAMAILIO_MODULES
# its module directory (default: the one beside it, as Debian lays it out),
# so an unpacked package (dpkg -x) works without an install.
# B2BUA_BENCH_CONF adds lines to b2bua's config (as in overload.sh), e.g.
# B2BUA_BENCH_CONF="overload_queue_delay_ms = 0;" to see it without
# overload control; the column "shed" counts its 503s (overload_refused).
#
# The harness.  Each step also runs a third system, "harness": the same
# sipp caller calling the same sipp callee directly, nothing between them
# (127.254.x.1).  Its highest clean rate is what this machine's load
# generators can drive at all, with both cores shared by the two sipp and
# nothing else; no system can be measured clean above it here, so the
# summary prints the highest ratio against Kamailio this machine can show.
# The column "redis us" is the CPU of b2bua's redis-server per call (its
# CDRs and call records; not in b2bua's "us/call", Kamailio has none).
# The column "sipp us" is the CPU of the two sipp processes per call
# (the shell's cutime + cstime: they are its waited-for descendants), what
# the load generators take from the cores the system under test shares.
# B2BUA_BENCH_SYSTEMS chooses and orders the systems (default
# "harness b2bua kamailio").

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
	echo "usage: $0 [RATE...]   (calls/s, 1..10000, ascending; default 500 1000 1500 2000 2500 3000)" >&2
	exit 2
}
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(500 1000 1500 2000 2500 3000)
prev=0
for r in "${RATES[@]}"; do
	if ! bench_uint "$r" 1 10000 || [ "$r" -le "$prev" ]; then usage; fi
	prev=$r
done
STEP_S=${B2BUA_BENCH_STEP_S:-10}
bench_uint "$STEP_S" 1 60 || usage
TOP=${RATES[${#RATES[@]} - 1]}
TALK_MS=1000
read -r -a SYSTEMS <<<"${B2BUA_BENCH_SYSTEMS:-harness b2bua kamailio}"
has() {  # SYSTEM: it is one of SYSTEMS
	local s
	for s in "${SYSTEMS[@]}"; do [ "$s" = "$1" ] && return 0; done
	return 1
}

for sys in "${SYSTEMS[@]}"; do
	case $sys in harness | b2bua | kamailio) ;; *) echo "B2BUA_BENCH_SYSTEMS: unknown system $sys" >&2; exit 2 ;; esac
done

KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
KAMAILIO_MODULES=${KAMAILIO_MODULES:-$(dirname "$KAMAILIO")/../lib/x86_64-linux-gnu/kamailio/modules}
command -v sipp >/dev/null 2>&1 || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
command -v jq >/dev/null 2>&1 || { echo "jq not found: apt-get install jq" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }
if has kamailio; then
	[ -x "$KAMAILIO" ] || { echo "$KAMAILIO not found: apt-get install kamailio, or set KAMAILIO" >&2; exit 1; }
	[ -r "$KAMAILIO_MODULES/dialog.so" ] || { echo "no dialog.so in $KAMAILIO_MODULES: set KAMAILIO_MODULES" >&2; exit 1; }
fi
[ -x "$B2BUA" ] || { echo "$B2BUA not built: run make" >&2; exit 1; }

bench_begin b2bua-compare
K_PID=
k_children=()

# The EXIT trap: Kamailio first (its main process stops its children; one
# that outlives it is killed if its PID is one we saw and it still runs
# the kamailio binary), then lib.sh's cleanup of the rest.
# shellcheck disable=SC2317  # the EXIT trap
compare_cleanup() {
	local rc=$? p exe
	exe=$(readlink -f "$KAMAILIO")
	[ -n "$K_PID" ] && bench_stop_pid "$K_PID" 5
	for p in "${k_children[@]}"; do
		[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && kill -KILL "$p" 2>/dev/null
	done
	(exit "$rc")
	bench_cleanup
}
trap compare_cleanup EXIT

# ---------------------------------------------------------------- b2bua

B_ADDR='' K_ADDR='' H_ADDR=''
if has b2bua; then
	bench_pick_addr 250
	B_ADDR=$ADDR
	bench_redis_start 2>/dev/null
	# The same 4 MiB receive buffer as Kamailio (maxbuffer in kamailio.cfg; it
	# asks with SO_RCVBUF, which net.core.rmem_max caps, 4 MiB here): run.sh
	# gives b2bua 8 MiB.
	bench_call_config "$TOP" 1 "udp_rcvbuf = 4194304;
${B2BUA_BENCH_CONF:-}"
	bench_b2bua_start 1
	B_PIDS=("$B2B_PID" "${CHILD_PIDS[@]}")
fi
if has harness; then
	bench_pick_addr 254
	H_ADDR=$ADDR
fi

# ---------------------------------------------------------------- Kamailio

if has kamailio; then
	# Its own address, its own temp dir (runtime dir, working dir, pid file).
	# -DD: no daemon, the main process stays our child; -E: log to stderr;
	# -n 1: one UDP receiver; -m/-M: shared/private memory in MB, room for the
	# transactions and dialogs of the highest rate.
	bench_pick_addr 252
	K_ADDR=$ADDR
	mkdir -p "$T/kamailio"
	# Its private libraries (libsrdb1...) live beside the module directory.
	LD_LIBRARY_PATH="$KAMAILIO_MODULES/..${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		"$KAMAILIO" -f "$here/kamailio.cfg" -DD -E -n 1 -m 1024 -M 64 -L "$KAMAILIO_MODULES" \
		-Y "$T/kamailio" -w "$T/kamailio" -P "$T/kamailio/kamailio.pid" \
		-l "udp:$K_ADDR:5060" >"$T/kamailio.log" 2>&1 &
	K_PID=$!
	PIDS+=("$K_PID")
	deadline=$((SECONDS + 10))
	until bench_udp_bound "$K_ADDR:5060"; do
		bench_alive "$K_PID" || { echo "kamailio exited during start-up:" >&2; tail -5 "$T/kamailio.log" >&2; exit 1; }
		[ "$SECONDS" -lt "$deadline" ] || { echo "kamailio not listening in 10 s" >&2; exit 1; }
		sleep 0.05
	done
	sleep 1   # its helper processes (timers) start after the receiver binds
	mapfile -t k_children < <(pgrep -P "$K_PID")
	K_PIDS=("$K_PID" "${k_children[@]}")
	bench_pin_sut "${K_PIDS[@]}"
fi

echo "compare: ${SYSTEMS[*]}${B_ADDR:+; b2bua (1 worker) on $B_ADDR}${K_ADDR:+; kamailio (${#K_PIDS[@]} processes, 1 UDP receiver) on $K_ADDR}${H_ADDR:+; harness (sipp to sipp) on $H_ADDR};" \
	"rates ${RATES[*]}; $STEP_S s of calls per step" >&2

# ---------------------------------------------------------------- the ladder

cdrs() { bench_rcli XLEN b2bua:cdr 2>/dev/null || echo 0; }
shed() {  # b2bua's overload 503s so far
	timeout 10 "$CLI" -s "$T/cli.sock" show stats --json 2>/dev/null | jq -r '.overload_refused // 0' 2>/dev/null || echo 0
}
# The CPU (clock ticks) of this shell's waited-for descendants: the sipp
# processes of a step, once waited for (and the few short tools it ran).
# shellcheck disable=SC2016  # an awk expression
sipp_ticks() { bench_stat_sum '$14 + $15' "$$"; }

# step SYSTEM RATE: one measured run; prints its line and sets STEP_CLEAN,
# STEP_CPU (us per call) and STEP_P99.
step() {
	local sys=$1 rate=$2 calls=$(($2 * STEP_S)) limit=$((STEP_S + 40)) dir="$T/$1-$2"
	local addr uac uas target cpu0 cpu1 cpu_ms cdr0 cdr1=0 n pids=() shed0 shed1 shed=- s0 s1 sipp_us
	local r0=0 r1=0 redis_us=-
	case $sys in
	b2bua)
		addr=$B_ADDR uac=$SIPP_DIR/uac_basic.xml uas=$SIPP_DIR/uas_basic.xml target=$B_ADDR:5060
		pids=("${B_PIDS[@]}")
		cdr0=$(cdrs)
		shed0=$(shed)
		;;
	kamailio)
		addr=$K_ADDR uac=$here/uac_proxied.xml uas=$here/uas_proxied.xml target=$K_ADDR:5060
		pids=("${K_PIDS[@]}")
		;;
	harness)
		addr=$H_ADDR uac=$SIPP_DIR/uac_basic.xml uas=$SIPP_DIR/uas_basic.xml target=$H_ADDR:5080
		;;
	esac
	s0=$(sipp_ticks)
	bench_sipp_uas "$dir" "$addr" "$uas" "$calls" "$limit" || exit 1
	cpu0=$(bench_cpu_ticks "${pids[@]}")
	[ "$sys" = b2bua ] && r0=$(bench_cpu_ticks "$REDIS_PID")
	bench_sipp_uac_start "$dir" "$addr" "$uac" "$target" "$rate" "$calls" "$TALK_MS" "$limit"
	bench_sipp_uac_wait
	cpu1=$(bench_cpu_ticks "${pids[@]}")
	[ "$sys" = b2bua ] && r1=$(bench_cpu_ticks "$REDIS_PID")
	bench_sipp_uas_wait
	s1=$(sipp_ticks)
	bench_sipp_result "$dir" "$TALK_MS"
	cpu_ms=$(((cpu1 - cpu0) * 1000 / CLK_TCK))
	STEP_CPU=$(bench_per "$cpu_ms" "$CALLS_DONE")
	[ "$sys" = harness ] && STEP_CPU=-
	sipp_us=$(bench_per $(((s1 - s0) * 1000 / CLK_TCK)) "$CALLS_DONE")
	[ "$sys" = b2bua ] && redis_us=$(bench_per $(((r1 - r0) * 1000 / CLK_TCK)) "$CALLS_DONE")
	STEP_P99=$(bench_pct 99 "$dir/rtt.txt")
	STEP_CLEAN=yes
	bench_clean "$calls" "$rate" || STEP_CLEAN=no
	if [ "$sys" = b2bua ]; then
		shed1=$(shed)
		shed=$((shed1 - shed0))
		for ((n = 0; n < 40; n++)); do
			cdr1=$(cdrs)
			[ $((cdr1 - cdr0)) -ge "$CALLS_DONE" ] && break
			sleep 0.25
		done
		[ $((cdr1 - cdr0)) -eq "$calls" ] || STEP_CLEAN=no
	fi
	if [ ${#pids[@]} -gt 0 ] && ! bench_alive "${pids[0]}"; then STEP_CLEAN=no; echo "$sys died" >&2; fi
	printf '%-8s %6s %9s %6s %7s %6s %7s  %7s / %-8s %9s %8s %8s  %s\n' "$sys" "$rate" "$RATE_OK" \
		"$CALLS_OK" "$((CALLS_FAILED + UAS_FAILED))" "$shed" "$((RETRANS_UAC + RETRANS_UAS))" \
		"$(bench_pct 50 "$dir/rtt.txt")" "$STEP_P99" "$STEP_CPU" "$redis_us" "$sipp_us" "$STEP_CLEAN"
}

declare -A best_rate=([b2bua]=0 [kamailio]=0 [harness]=0) best_cpu=() best_p99=()
declare -A fails=([b2bua]=0 [kamailio]=0 [harness]=0) cpu_at=() p99_at=()
both_rate=0
printf '%-8s %6s %9s %6s %7s %6s %7s  %-18s %9s %8s %8s  %s\n' system offered achieved ok failed shed retrans \
	"INVITE->200 p50/p99" "us/call" "redis us" "sipp us" clean
for r in "${RATES[@]}"; do
	clean_both=yes
	for sys in "${SYSTEMS[@]}"; do
		# The harness's steps say nothing of the two systems' shared row.
		if [ "${fails[$sys]}" -ge 2 ]; then
			[ "$sys" = harness ] || clean_both=no
			continue
		fi
		step "$sys" "$r"
		cpu_at[$sys]=$STEP_CPU p99_at[$sys]=$STEP_P99
		if [ "$STEP_CLEAN" = yes ]; then
			best_rate[$sys]=$r best_cpu[$sys]=$STEP_CPU best_p99[$sys]=$STEP_P99 fails[$sys]=0
		else
			fails[$sys]=$((fails[$sys] + 1))
			[ "$sys" = harness ] || clean_both=no
		fi
		sleep 2   # the callee's timewait, and a breath between runs
	done
	if [ "$clean_both" = yes ] && has b2bua && has kamailio; then
		both_rate=$r both_cpu_b=${cpu_at[b2bua]} both_cpu_k=${cpu_at[kamailio]}
		both_p99_b=${p99_at[b2bua]} both_p99_k=${p99_at[kamailio]}
	fi
done

# ---------------------------------------------------------------- summary

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
printf '\nclean: every call succeeded, 0 failed calls and 0 retransmissions on both sipp sides,\n'
printf '       >= 95 %% of the offered rate sustained; for b2bua one CDR per call in Redis.\n'
printf '%-38s %12s %12s %14s\n' "" "b2bua (1 w)" "kamailio" "b2bua/kamailio"
printf '%-38s %12s %12s %14s\n' "highest clean rate (calls/s)" "${best_rate[b2bua]}" "${best_rate[kamailio]}" \
	"$(ratio "${best_rate[b2bua]}" "${best_rate[kamailio]}")"
printf '%-38s %12s %12s %14s\n' "CPU per call at it (us)" "${best_cpu[b2bua]:-n/a}" "${best_cpu[kamailio]:-n/a}" \
	"$(ratio "${best_cpu[b2bua]:-0}" "${best_cpu[kamailio]:-0}")"
printf '%-38s %12s %12s %14s\n' "INVITE->200 p99 at it (ms)" "${best_p99[b2bua]:-n/a}" "${best_p99[kamailio]:-n/a}" \
	"$(ratio "${best_p99[b2bua]:-0}" "${best_p99[kamailio]:-0}")"
if [ "$both_rate" -gt 0 ]; then
	printf '%-38s %12s %12s %14s\n' "CPU per call at $both_rate calls/s (us)" "$both_cpu_b" "$both_cpu_k" \
		"$(ratio "$both_cpu_b" "$both_cpu_k")"
	printf '%-38s %12s %12s %14s\n' "INVITE->200 p99 at $both_rate calls/s (ms)" "$both_p99_b" "$both_p99_k" \
		"$(ratio "$both_p99_b" "$both_p99_k")"
fi
if has harness; then
	# No system is measured clean above the harness's own ceiling here.
	printf '\nharness (sipp to sipp, nothing between): highest clean rate %s calls/s' "${best_rate[harness]}"
	if [ "${best_rate[harness]}" = "$TOP" ]; then printf ' (the top of the ladder: its ceiling is higher)'; fi
	printf '\n'
	if [ "${best_rate[kamailio]}" -gt 0 ] && [ "${best_rate[harness]}" -lt "$TOP" ]; then
		printf 'highest b2bua/kamailio rate ratio this machine can show: %s\n' \
			"$(ratio "${best_rate[harness]}" "${best_rate[kamailio]}")"
	fi
fi
if { has b2bua && ! bench_alive "$B2B_PID"; } || { has kamailio && ! bench_alive "$K_PID"; }; then
	echo "a system died during the run" >&2
	exit 1
fi
exit 0
