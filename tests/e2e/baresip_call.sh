#!/bin/bash
#
# baresip_call — the acceptance test of a real softphone against the shipped
# sample configuration: two baresip instances (Debian's baresip-core)
# register to b2bua and call each other.
#
#   - b2bua runs etc/b2bua.conf with only what scripts/quickstart.sh changes
#     (cli_socket, cdr_spool_dir, redis_address: paths into $T) and the
#     test's loopback address in place of 127.0.0.1 (listen, advertise,
#     domain), so that tests may run in parallel; its authentication keys
#     are the sample's, untouched: the point is that the shipped default
#     lets a common phone register;
#   - the subscribers alice and bob are created as the quick start does
#     (`b2bua-cli user add NAME --display Name`, password generated and
#     read from its answer);
#   - each phone is a headless baresip with its own config directory: no
#     sound device (a 440 Hz sine as source, the aubridge module as player),
#     driven through its ctrl_tcp module (tests/e2e/baresip_ctrl.py), bob
#     answering by itself (answermode=auto);
#   - both register with digest: Redis holds their bindings, with baresip's
#     User-Agent, and `b2bua-cli user show` lists them;
#   - alice dials bob: she authenticates her INVITE (407, MD5), bob answers,
#     the call table shows one ANSWERED call alice -> bob, and both phones
#     say the call is established;
#   - alice hangs up: the table empties and the CDR says ANSWERED, alice,
#     bob, hung up by the caller.

. "$(dirname "$0")/lib.sh"

command -v baresip >/dev/null 2>&1 ||
	skip "baresip not found (Debian package baresip-core: apt-get install baresip-core)"
# Debian's python3 first: a python3 earlier in PATH may be a slow wrapper.
PYTHON=$(command -v /usr/bin/python3 || command -v python3) || skip "python3 not found"
CTRL=$top_srcdir/tests/e2e/baresip_ctrl.py
SAMPLE=$top_srcdir/etc/b2bua.conf
PREFIX=b2bua:   # the sample's redis_prefix

# ---------------------------------------------------------------- the phones

declare -A PHONE_PID=() PHONE_CTRL=()

# phone_start NAME SIP_PORT CTRL_PORT RTP_PORT PASSWORD: a baresip for
# sip:NAME@$ADDR in the background, its config in $T/NAME, its screen in
# $T/NAME.out.  baresip also listens on SIP_PORT + 1 (TLS): keep them apart.
phone_start() {
	local name=$1 sip=$2 ctrl=$3 rtp=$4 pw=$5 dir=$T/$1
	mkdir -p "$dir"
	# ausine only makes 48 kHz stereo: the source is resampled to the codec.
	cat >"$dir/config" <<EOF
poll_method		epoll
sip_listen		$ADDR:$sip
net_interface		$ADDR
call_local_timeout	30
call_max_calls		2
audio_player		aubridge,$name
audio_source		ausine,440
audio_alert		aubridge,$name
ausrc_srate		48000
auplay_srate		48000
ausrc_channels		2
rtp_ports		$rtp-$((rtp + 9))
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module			ctrl_tcp.so
module_tmp		account.so
module_app		menu.so
ctrl_tcp_listen		$ADDR:$ctrl
EOF
	printf '<sip:%s@%s>;auth_pass=%s;answermode=auto;regint=600\n' \
		"$name" "$ADDR" "$pw" >"$dir/accounts"
	baresip -f "$dir" </dev/null >"$T/$name.out" 2>&1 &
	PHONE_PID[$name]=$!
	PHONE_CTRL[$name]=$ctrl
	_track "$!"
}

# phone NAME COMMAND [PARAMS]: one ctrl_tcp command; its answer on stdout.
phone() {
	timeout 10 "$PYTHON" "$CTRL" "$ADDR" "${PHONE_CTRL[$1]}" "${@:2}"
}

phone_ctrl_up() { phone "$1" reginfo >/dev/null 2>&1; }

# registered NAME: Redis holds a binding of NAME made by baresip.
registered() {
	[ "$(rcli HLEN "${PREFIX}loc:$1")" = 1 ] &&
		rcli HVALS "${PREFIX}loc:$1" | grep -q '"user_agent":"baresip '
}

# call_state: the state of the one call in the table ("" when none).
call_state() { cli_json calls 'if length == 1 then .[0].state else "" end'; }
answered() { [ "$(call_state)" = ANSWERED ]; }

# ---------------------------------------------------------------- b2bua, sample config

redis_start
sed -e "s|^cli_socket = .*|cli_socket = \"$CLI_SOCK\";|" \
    -e "s|^cdr_spool_dir = .*|cdr_spool_dir = \"$T/spool\";|" \
    -e "s|^redis_address = .*|redis_address = \"unix:$REDIS_SOCK\";|" \
    -e "s|^listen = \"127.0.0.1\";|listen = \"$ADDR\";|" \
    -e "s|^advertise = \"127.0.0.1\";|advertise = \"$ADDR\";|" \
    -e "s|^domain = \"127.0.0.1\";|domain = \"$ADDR\";|" \
    "$SAMPLE" >"$CONF"
# Exactly those six lines differ, and every auth key is the sample's.
assert_eq 6 "$(diff "$SAMPLE" "$CONF" | grep -c '^>')" "config: six lines changed"
assert_eq "$(grep '^auth' "$SAMPLE")" "$(grep '^auth' "$CONF")" \
	"config: the sample's auth keys, untouched"
"$B2BUA" -t -c "$CONF" >"$T/check.out" 2>&1 || fail "b2bua -t: $(cat "$T/check.out")"
CFG_WORKERS=$(nproc)   # the sample's workers = 0: one per CPU
[ "$CFG_WORKERS" -le 64 ] || CFG_WORKERS=64
b2b_start
wait_for 5 redis_up || fail "workers not connected to Redis"

# The quick start's subscribers: a generated password each.
declare -A PW=()
for user in alice bob; do
	out=$(cli user add "$user" --display "${user^}") || fail "user add $user: $out"
	PW[$user]=$(printf '%s\n' "$out" | sed -n "s/^user $user added; password: //p")
	[ -n "${PW[$user]}" ] || fail "user add $user printed no password: '$out'"
	log "user $user added"
done

# ---------------------------------------------------------------- register
phone_start alice 5201 4401 16000 "${PW[alice]}"
phone_start bob 5211 4411 16020 "${PW[bob]}"
for user in alice bob; do
	wait_for 20 phone_ctrl_up "$user" || fail "baresip $user: ctrl_tcp does not answer"
	wait_for 15 registered "$user" ||
		fail "baresip $user did not register: $(grep -a -m3 -E 'reg:|Register|[0-9]{3} ' "$T/$user.out")"
	log "ok: $user registered (Redis)"
	assert_eq "1 baresip" \
		"$(cli user show "$user" --json |
			jq -r '.registrations | "\(length) \(.[0].user_agent | split(" ")[0])"')" \
		"b2bua-cli user show $user: one binding, of baresip"
	assert_grep "^> sip:$user@$ADDR .*OK" <(phone "$user" reginfo | sed 's/\x1b\[[0-9;]*m//g') \
		"baresip $user says it is registered"
done
assert_no_grep "Function not implemented" "$T/alice.out" "baresip answered the challenge"

# ---------------------------------------------------------------- call
phone alice dial "sip:bob@$ADDR" >/dev/null || fail "baresip alice refused to dial"
wait_for 15 answered || fail "no ANSWERED call (state '$(call_state)')"
assert_eq "sip:alice@$ADDR sip:bob@$ADDR" "$(cli_json calls '.[0] | "\(.caller) \(.callee)"')" \
	"show calls: alice -> bob"
assert_grep "1 call" <(cli show calls) "b2bua-cli show calls: one call"
wait_for 5 grep -aq "Call established: sip:bob@$ADDR" "$T/alice.out" ||
	fail "baresip alice does not say the call is established"
wait_for 5 grep -aq "Call established: sip:alice@$ADDR" "$T/bob.out" ||
	fail "baresip bob does not say the call is established"
log "ok: both phones say the call is established"
assert_ge 1 "$(stat_of 'final_codes["407"]')" "alice's INVITE was challenged (407)"

# ---------------------------------------------------------------- hang up, CDR
phone alice hangup >/dev/null || fail "baresip alice refused to hang up"
wait_for 10 calls_empty || fail "the call did not leave the table"
cdr=$(cli cdr tail 1 --json) || fail "cdr tail failed"
assert_eq "ANSWERED 200 sip:alice@$ADDR sip:bob@$ADDR caller" \
	"$(printf '%s' "$cdr" | jq -r '.[0] | "\(.disposition) \(.sip_code) \(.caller) \(.callee) \(.hangup_by)"')" \
	"CDR: answered alice -> bob, hung up by the caller"
assert_grep "^sip:bob-[^@]*@$ADDR:5211$" <(printf '%s' "$cdr" | jq -r '.[0].answered_by') \
	"CDR: answered by bob's baresip"
assert_no_grep "(error|crit)" "$T/b2bua.log" "no errors in the daemon's log"
log "PASS"
