# shellcheck shell=bash
#
# flow_lib.sh — helpers shared by the call-flow tests (tests/e2e/flow_*.sh and
# cdr_redis_outage.sh), sourced after lib.sh.
#
# Design note.  A call-flow test asserts three views of the same call:
#   - what every party saw: the sequence of distinct messages in its sipp
#     message log (seq_of / assert_seq), and the bodies it got (msg_body);
#   - the daemon's call table while the call is up (call_field, wait_state);
#   - the call's one CDR in the Redis stream (cdr_load, assert_cdr,
#     assert_cdr_times), read as JSON through a Lua script so that field
#     order and empty values need no parsing of redis-cli's output.
# It also registers sipp user agents of local subscribers (register_as; the
# subscribers themselves come from lib.sh's add_user) for the flows that
# need the location service.

CDR_STREAM=b2bua:cdr
CDR_JSON=$T/cdr.json

# ------------------------------------------------------------ message sequences

# seq_of LOG [CALL-ID]: the distinct messages of a sipp message log, one a
# line: "sent INVITE", "recv 180/INVITE" (a response and its CSeq method).
# With CALL-ID, only that dialog's messages.
seq_of() {
	msg_list "$1" | awk -v cid="${2:-}" '
		cid != "" && $4 != cid { next }
		$2 ~ /^[0-9]+$/ { print $1, $2 "/" $3; next }
		{ print $1, $2 }'
}

# assert_seq LOG WHAT LINE...: the party saw exactly these messages, in
# this order.
assert_seq() {
	local log=$1 what=$2 want got
	shift 2
	want=$(printf '%s\n' "$@")
	got=$(seq_of "$log")
	[ "$want" = "$got" ] ||
		fail "$what: message sequence
  expected: $(printf '%s' "$want" | paste -sd, | sed 's/,/, /g')
  got:      $(printf '%s' "$got" | paste -sd, | sed 's/,/, /g')"
	log "ok: $what saw: $(printf '%s' "$got" | paste -sd, | sed 's/,/, /g')"
}

# msg_body LOG DIR KEY [N]: the body (CRs and blank lines removed) of the
# Nth (default 1st) distinct message DIR (sent|recv) whose key, a method or
# "CODE/CSEQ-METHOD", is KEY.  Retransmissions are skipped.
msg_body() {
	awk -v dir="$2" -v want="$3" -v nth="${4:-1}" '
	function flush(id) {
		if (inmsg && k == want && d == dir) {
			id = cseq SUBSEP cid SUBSEP branch
			if (!(id in seen)) {
				seen[id] = 1
				if (++n == nth) { printf "%s", body; done = 1; exit }
			}
		}
		inmsg = 0
	}
	/^-----------------------------------------------/ { flush(); next }
	/^[A-Z]+ message sent/ { flush(); d = "sent"; inmsg = 1; k = ""; hdr = 1; body = "";
		cseq = ""; cid = ""; branch = ""; next }
	/^[A-Z]+ message received/ { flush(); d = "recv"; inmsg = 1; k = ""; hdr = 1; body = "";
		cseq = ""; cid = ""; branch = ""; next }
	!inmsg { next }
	{ sub(/\r$/, "") }
	k == "" { if (NF > 0) { k = $1; if ($1 == "SIP/2.0") sc = $2; else sc = "" } next }
	hdr && NF == 0 { hdr = 0; next }
	hdr {
		n1 = tolower($1)
		if (n1 == "cseq:") { cseq = $2 " " $3; if (sc != "") k = sc "/" $3 }
		if (n1 == "call-id:" || n1 == "i:") cid = $2
		if ((n1 == "via:" || n1 == "v:") && branch == "" && match($0, /branch=[^;, ]+/))
			branch = substr($0, RSTART, RLENGTH)
		next
	}
	NF > 0 { body = body $0 "\n" }
	END { if (!done) flush() }' "$1"
}

# msg_time_ms LOG DIR KEY: when (epoch ms, from sipp's log) the first
# message DIR (sent|recv) whose key - a method, or a code - was logged.
msg_time_ms() {
	local when
	when=$(awk -v dir="$2" -v want="$3" '
	/^-----------------------------------------------/ { stamp = $2 " " $3; next }
	/^[A-Z]+ message sent/ { d = "sent"; first = 1; next }
	/^[A-Z]+ message received/ { d = "recv"; first = 1; next }
	first && NF > 0 {
		first = 0
		k = ($1 == "SIP/2.0") ? $2 : $1
		if (d == dir && k == want) { print stamp; exit }
	}' "$1")
	[ -n "$when" ] || fail "$(basename "$1"): no $2 $3"
	date -d "$when" +%s%3N
}

# request_uri LOG DIR METHOD: the Request-URIs of the requests DIR
# (sent|recv) of METHOD, each distinct URI once.
request_uri() {
	awk -v dir="$2" -v want="$3" '
	/^[A-Z]+ message sent/ { d = "sent"; first = 1; next }
	/^[A-Z]+ message received/ { d = "recv"; first = 1; next }
	/^-----------------------------------------------/ { first = 0; next }
	first && NF > 0 { sub(/\r$/, ""); first = 0; if (d == dir && $1 == want) print $2 }
	' "$1" | awk '!seen[$0]++'
}

# from_uri LOG: the URI in the From header of the first INVITE a sipp caller
# sent (what the daemon must report as the caller).
from_uri() { msg_header "$1" sent INVITE From | head -n1 | sed -n 's/.*<\([^>]*\)>.*/\1/p'; }

# ------------------------------------------------------------ the call table

# call_field JQ-SELECT FIELD: FIELD of the call(s) that JQ-SELECT picks from
# `show calls --json` (e.g. call_field '.callee | contains("bob")' state).
call_field() { cli_json calls ".[] | select($1) | .$2"; }

# wait_state SECONDS JQ-CONDITION WHAT: poll `show calls --json` until the
# condition (a jq expression over the array) is true.
wait_state() {
	local secs=$1 cond=$2 what=$3
	_state_ok() { [ "$(cli_json calls "$cond")" = true ]; }
	wait_for "$secs" _state_ok ||
		fail "$what: not seen within $secs s; show calls: $(cli show calls --json)"
	log "ok: show calls: $what"
}

# assert_leg_transports CALL-JSON A B: one call of `show calls --json`
# (saved in CALL-JSON) has its A-leg on transport A and its B-leg on B.
assert_leg_transports() {
	assert_eq "$2 $3" "$(jq -r '"\(.a_transport) \(.b_transport)"' "$1")" \
		"show calls --json: a_transport, b_transport"
}

# assert_call_transports ID A B: the call ID is up with its A-leg on
# transport A and its B-leg on B ("udp", "tcp", "tls") in all three views of
# the call table: `show calls --json`, the text table's last two columns
# (A_TRANSPORT, B_TRANSPORT) and `show call ID`.
assert_call_transports() {
	local id=$1 a=$2 b=$3
	assert_eq "$a $b" \
		"$(cli_json calls ".[] | select(.id == \"$id\") | \"\(.a_transport) \(.b_transport)\"")" \
		"show calls --json: a_transport, b_transport"
	assert_eq "$a $b" "$(cli show calls | awk -v id="$id" '$1 == id { print $(NF - 1), $NF }')" \
		"show calls: A_TRANSPORT, B_TRANSPORT columns"
	cli show call "$id" >"$T/show_call.txt" || fail "b2bua-cli show call $id failed"
	assert_grep "^  A-leg transport: $a\$" "$T/show_call.txt" "show call: A-leg transport"
	assert_grep "^  B-leg transport: $b\$" "$T/show_call.txt" "show call: B-leg transport"
}

# kill_owners SECONDS ERE: SIGKILL, at once, every worker that owns a call in the
# table (new calls are spread over the workers by a hash of their Call-ID),
# and wait up to SECONDS until each successor has logged one more line
# matching ERE (its takeover line).  Writes "A-CALL-ID OWNER" lines to $T/owners and the new
# takeover lines to $T/takeovers; sets OWNERS (the indices) and VICTIM
# (index -> killed pid).
declare -A VICTIM
kill_owners() {
	local secs=$1 ere=$2 w before want
	cli_json calls '.[] | "\(.a_call_id) \(.worker)"' >"$T/owners"
	OWNERS=$(cli_json calls '[.[].worker] | unique | .[]')
	before=$(grep -cE "$ere" "$T/b2bua.log")
	want=$((before + $(echo "$OWNERS" | wc -w)))
	for w in $OWNERS; do
		VICTIM[$w]=$(cli_json workers ".[] | select(.index == $w) | .pid")
		log "killing worker $w (pid ${VICTIM[$w]}): it owns $(grep -c " $w\$" "$T/owners") calls"
		kill -KILL "${VICTIM[$w]}"
	done
	_taken_over() { [ "$(grep -cE "$ere" "$T/b2bua.log")" -ge "$want" ]; }
	wait_for "$secs" _taken_over || fail "the killed workers did not take their calls over"
	grep -E "$ere" "$T/b2bua.log" | tail -n +$((before + 1)) >"$T/takeovers"
}

# kill_unacked_owners N: kill_owners for calls answered but not ACKed by
# their callers (crash_unacked*.sh), and check that the successors took
# over N such calls, all waiting for their callee's 2xx again.
kill_unacked_owners() {
	local waiting
	kill_owners 5 "took over [0-9]+ answered calls"
	waiting=$(grep -E "answered calls taken over wait for their callee's 2xx" "$T/b2bua.log" |
		sed -E 's/.* ([0-9]+) answered calls taken over.*/\1/' | awk '{ n += $1 } END { print n + 0 }')
	assert_eq "$1" "$waiting" "answered calls taken over waiting for the callee's 2xx"
}

# ------------------------------------------------------------ CDRs

_CDR_LUA='local out = {}
for _, e in ipairs(redis.call("XRANGE", KEYS[1], "-", "+")) do
	local o = { stream_id = e[1] }
	for i = 1, #e[2], 2 do o[e[2][i]] = e[2][i + 1] end
	out[#out + 1] = o
end
if #out == 0 then return "[]" end
return cjson.encode(out)'

# cdr_load: every CDR of the stream into $CDR_JSON (a JSON array, stream order).
cdr_load() {
	rcli EVAL "$_CDR_LUA" 1 "$CDR_STREAM" >"$CDR_JSON" ||
		fail "cannot read the CDR stream $CDR_STREAM"
	jq -e 'type == "array"' "$CDR_JSON" >/dev/null ||
		fail "CDR stream: not a JSON array: $(head -c 300 "$CDR_JSON")"
}

cdr_len() { rcli XLEN "$CDR_STREAM"; }

# wait_cdrs N [SECONDS]: wait (default 5 s) for N CDRs in the stream, then
# make sure no more arrive (exactly one per call), and load them.
wait_cdrs() {
	local n=$1 secs=${2:-5}
	_cdrs_there() { [ "$(cdr_len)" -ge "$n" ]; }
	wait_for "$secs" _cdrs_there || fail "expected $n CDRs in $CDR_STREAM, have $(cdr_len)"
	sleep 0.5
	assert_eq "$n" "$(cdr_len)" "CDRs in $CDR_STREAM"
	cdr_load
}

# cdr_get I FIELD: a field of the I-th CDR (0-based, stream order).
cdr_get() { jq -r --argjson i "$1" --arg f "$2" '.[$i][$f] // "<absent>"' "$CDR_JSON"; }

# cdr_index JQ-SELECT: the index of the one CDR matching, e.g.
# '.a_call_id == "..."'; fails unless exactly one matches.
cdr_index() {
	local idx
	idx=$(jq -r "[to_entries[] | select(.value | $1) | .key] | if length == 1 then .[0]
		else \"x\" + (length | tostring) end" "$CDR_JSON")
	case $idx in
	x*) fail "CDR where $1: ${idx#x} match, expected 1" ;;
	esac
	echo "$idx"
}

# assert_cdr I FIELD=VALUE...: fields of the I-th CDR.
assert_cdr() {
	local i=$1 kv f v
	shift
	for kv in "$@"; do
		f=${kv%%=*}
		v=${kv#*=}
		assert_eq "$v" "$(cdr_get "$i" "$f")" "CDR[$i].$f"
	done
}

# assert_cdr_fields I: the CDR has every field of the record, and no other.
CDR_FIELDS=(a_call_id a_transport answer_ms answered_by b_call_id b_transport billable_ms callee
	caller cause closed_by disposition end_ms forwarded_to hangup_by host id ring_ms sip_code
	start_ms worker)
assert_cdr_fields() {
	local want got
	want=$(printf '%s\n' "${CDR_FIELDS[@]}" stream_id | sort | paste -sd' ')
	got=$(jq -r --argjson i "$1" '.[$i] | keys[]' "$CDR_JSON" | sort | paste -sd' ')
	assert_eq "$want" "$got" "CDR[$1]: field names"
}

# assert_cdr_times I: the CDR's clock fields are consistent: start <= ring
# <= answer <= end (ring and answer 0 when they did not happen), billable =
# end - answer when answered, else 0, and the call is recent.
assert_cdr_times() {
	local i=$1 s r a e b now
	s=$(cdr_get "$i" start_ms); r=$(cdr_get "$i" ring_ms); a=$(cdr_get "$i" answer_ms)
	e=$(cdr_get "$i" end_ms); b=$(cdr_get "$i" billable_ms)
	now=$(date +%s%3N)
	[ "$s" -gt $((now - 120000)) ] && [ "$s" -le "$now" ] ||
		fail "CDR[$i].start_ms $s is not within the last 2 minutes (now $now)"
	[ "$e" -ge "$s" ] && [ "$e" -le "$now" ] || fail "CDR[$i]: end_ms $e not in [$s, $now]"
	if [ "$r" != 0 ]; then
		[ "$r" -ge "$s" ] && [ "$r" -le "$e" ] || fail "CDR[$i]: ring_ms $r not in [$s, $e]"
	fi
	if [ "$a" != 0 ]; then
		[ "$a" -ge "$s" ] && [ "$a" -le "$e" ] || fail "CDR[$i]: answer_ms $a not in [$s, $e]"
		[ "$r" = 0 ] || [ "$r" -le "$a" ] || fail "CDR[$i]: ring_ms $r after answer_ms $a"
		assert_eq $((e - a)) "$b" "CDR[$i].billable_ms = end_ms - answer_ms"
	else
		assert_eq 0 "$b" "CDR[$i].billable_ms (not answered)"
	fi
	log "ok: CDR[$i] times: ring +$([ "$r" = 0 ] && echo - || echo $((r - s))) ms," \
		"answer +$([ "$a" = 0 ] && echo - || echo $((a - s))) ms, end +$((e - s)) ms"
}

# assert_match ERE VALUE WHAT
assert_match() {
	[[ $2 =~ $1 ]] || fail "$3: '$2' does not match /$1/"
	log "ok: $3 = $2"
}

# assert_cdr_id I ID WORKER: the CDR's id is the call id `show calls` gave
# (one id everywhere), and that id is NODE-wWORKER-EPOCHHEX-N.
assert_cdr_id() {
	assert_eq "$2" "$(cdr_get "$1" id)" "CDR[$1].id = the id show calls gave"
	assert_match "^$(node_id)-w$3-[0-9a-f]+-[0-9]+\$" "$2" "call id form"
}

# assert_between MIN MAX VALUE WHAT
assert_between() {
	[ "$3" -ge "$1" ] 2>/dev/null && [ "$3" -le "$2" ] ||
		fail "$4: expected within [$1, $2], got '$3'"
	log "ok: $4 = $3 (within [$1, $2])"
}

# The node id write_config gives the daemon (the CDR's host).
node_id() { echo "e2e-${TEST_NAME//_/-}"; }

# ------------------------------------------------------------ subscribers

# register_as RUN USER PASSWORD PORT: USER registers the user agent that will
# listen on $ADDR:PORT (one REGISTER with digest, sent from that port, so
# that the binding's Contact is sip:USER@$ADDR:PORT); requires its 200.
register_as() {
	local run=$1 user=$2 pw=$3 port=$4
	uac_run "$run" reg_auth -m 1 -p "$port" -s "$user" -ap "$pw" \
		-key exp_hdr "Expires: 300" -key cparams ";q=1"
	assert_count "$T/$run.msg" recv 200/REGISTER 1
	[ -n "$(rcli HGET "b2bua:loc:$user" "sip:$user@$ADDR:$port")" ] ||
		fail "no binding sip:$user@$ADDR:$port in b2bua:loc:$user: $(rcli HKEYS "b2bua:loc:$user")"
}

