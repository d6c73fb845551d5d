#!/bin/bash
#
# tls_verify — who gets through the TLS ports, and what a failed handshake
# costs (issue 11, TLS): Sofia-SIP's TLS with tls_verify_peer = true, a CA
# made by the test (tls_lib.sh).  Asserted:
#   - every worker listens on the public TLS port (SO_REUSEPORT) and on its
#     own TLS port; the certificate directory the workers made from the
#     configured files is gone once they are up (no copy of the key stays);
#   - a client with a certificate of tls_ca_file gets its OPTIONS answered
#     200 over TLS, on the public and on an own TLS port;
#   - refused, each with a clean close: a client that shows no certificate,
#     one whose certificate another CA signed, one that does not trust our
#     certificate, and bytes that are no TLS at all; each is counted once in
#     b2bua_tls_handshake_failures_total, and the log names the peer; a
#     connection closed before its handshake counts too;
#   - a connection that opens and sends nothing, and all the above, never
#     stall the worker: UDP OPTIONS are answered before, between and after;
#   - tls_min_version = "1.3" (second start, verification off): a TLS 1.2
#     client is refused and counted, a TLS 1.3 client gets its 200, and so
#     does a client without a certificate (nothing is asked of it).

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tls_lib.sh"

command -v curl >/dev/null || skip "curl not found (Debian package curl)"
command -v ss >/dev/null || skip "ss not found (Debian package iproute2)"

MPORT=9464
METRICS_URL="http://$ADDR:$MPORT"
tls_pki
redis_start
CFG_EXTRA="$(tls_config true)
metrics_address = \"$ADDR:$MPORT\";"
b2b_start

# --- listeners, and the certificate directory
assert_eq "$CFG_WORKERS" "$(ss -Htln "sport = :$TLS_PORT" | grep -c "$ADDR:$TLS_PORT")" \
	"TLS listeners on the public TLS port"
for i in $(seq 0 $((CFG_WORKERS - 1))); do
	port=$((TLS_WORKER_PORT_BASE + i))
	[ "$(ss -Htln "sport = :$port" | grep -c "$ADDR:$port")" = 1 ] ||
		fail "worker $i does not listen on TLS $ADDR:$port"
done
assert_eq "" "$(find "$T" -maxdepth 1 -name 'tls-*')" \
	"no certificate directory left once the workers are up"
udp_options_ok || fail "UDP OPTIONS unanswered at start"
assert_eq 0 "$(tls_metric b2bua_tls_handshake_failures_total)" "no failed handshake yet"

# --- a trusted client certificate: answered, public and own port
tls_options good "$TLS_PORT" -cert "$T/pki/client.pem" -key "$T/pki/client.key" ||
	fail "a client with a certificate of tls_ca_file got no 200 (see $T/good.out)"
assert_grep "Via: SIP/2.0/TLS" "$T/good.out" "the 200 came back over TLS"
tls_options good_own "$TLS_WORKER_PORT_BASE" -cert "$T/pki/client.pem" \
	-key "$T/pki/client.key" || fail "no 200 on worker 0's own TLS port (see $T/good_own.out)"
log "ok: a trusted client certificate is answered on the public and the own TLS port"

# --- a silent connection stays open but does not stall the worker
exec 7<>"/dev/tcp/$ADDR/$TLS_PORT" || fail "cannot connect to the TLS port"
udp_options_ok || fail "UDP OPTIONS unanswered while a TLS connection sends nothing"

# --- refused: each a clean close, each counted once
tls_options nocert "$TLS_PORT" && fail "a client without a certificate got an answer"
assert_no_grep "SIP/2.0 [0-9]" "$T/nocert.out" "no SIP answer without a certificate"
wait_for 5 tls_failures_are 1 ||
	fail "the refusal without a certificate was not counted once"
udp_options_ok || fail "UDP OPTIONS unanswered after a refused client"

tls_options rogue "$TLS_PORT" -cert "$T/pki/rogue.pem" -key "$T/pki/rogue.key" &&
	fail "a client whose certificate another CA signed got an answer"
wait_for 5 tls_failures_are 2 ||
	fail "the refusal of the rogue certificate was not counted once"

# The client does not trust us (it knows only the rogue CA): it aborts.
tls_options distrust "$TLS_PORT" -CAfile "$T/pki/rogue-ca.pem" -cert "$T/pki/client.pem" \
	-key "$T/pki/client.key" && fail "a client that does not trust us got an answer"
assert_grep "verify error|certificate verify failed" "$T/distrust.out" \
	"the client refused our certificate"
wait_for 5 tls_failures_are 3 ||
	fail "the client's abort was not counted once"

tls_garbage_closed "$TLS_PORT" || fail "bytes that are no TLS left the connection open"
wait_for 5 tls_failures_are 4 ||
	fail "the garbage was not counted once"
udp_options_ok || fail "UDP OPTIONS unanswered after garbage on the TLS port"
assert_grep "TLS handshake \(accept\) with [0-9.]+:[0-9]+ failed" "$T/b2bua.log" \
	"the failures are logged with the peer"
log "ok: no certificate, a rogue one, a distrusting client and garbage: closed and counted"
# The silent connection closes without a handshake: a failure too.
exec 7>&-
wait_for 5 tls_failures_are 5 || fail "a connection closed before its handshake was not counted"

# The trusted client still gets through, and nothing else was counted.
tls_options good2 "$TLS_PORT" -cert "$T/pki/client.pem" -key "$T/pki/client.key" ||
	fail "the trusted client got no 200 after the refusals"
assert_eq 5 "$(tls_metric b2bua_tls_handshake_failures_total)" "5 failures in all"
b2b_stop || fail "b2bua did not stop cleanly"

# --- tls_min_version = "1.3", no verification
rm -f "$CONF"
CFG_EXTRA="$(tls_config false)
tls_min_version = \"1.3\";
metrics_address = \"$ADDR:$MPORT\";"
b2b_start
tls_options v12 "$TLS_PORT" -tls1_2 && fail "a TLS 1.2 client got through tls_min_version 1.3"
assert_grep "alert protocol version|no protocols available|unsupported protocol" "$T/v12.out" \
	"TLS 1.2 was refused by version"
wait_for 5 tls_failures_are 1 ||
	fail "the TLS 1.2 refusal was not counted once"
tls_options v13 "$TLS_PORT" -tls1_3 || fail "a TLS 1.3 client got no 200 (see $T/v13.out)"
assert_grep "Protocol *: TLSv1.3|TLSv1.3" "$T/v13.out" "the answer came over TLS 1.3"
tls_options anon "$TLS_PORT" ||
	fail "without tls_verify_peer a client without a certificate got no 200"
udp_options_ok || fail "UDP OPTIONS unanswered at the end"
log "ok: tls_min_version 1.3 refuses TLS 1.2; no client certificate asked without verification"
b2b_stop || fail "b2bua did not stop cleanly"
log "PASS"
