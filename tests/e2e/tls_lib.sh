# tls_lib.sh — what the TLS e2e tests share (sourced after lib.sh): a
# throwaway PKI made with openssl in the test's temp dir, the config lines
# of a TLS daemon, and an OpenSSL client that speaks SIP over TLS.
#
# $T/pki holds, all made fresh by tls_pki (RSA 2048, valid 2 days):
#   ca.pem/ca.key          the test's CA (tls_ca_file)
#   server.pem/server.key  the daemon's certificate, IP:$ADDR, signed by ca
#   client.pem/client.key  a client certificate signed by ca
#   rogue-ca.pem, rogue.pem/rogue.key  a certificate from another CA

TLS_PORT=5061              # the daemon's public TLS port (the default)
TLS_WORKER_PORT_BASE=5170  # worker i's own TLS port (the default)

command -v openssl >/dev/null || skip "openssl not found (Debian package openssl)"

# _tls_cert NAME CA SUBJ: NAME.key/NAME.pem signed by CA (CA.pem/CA.key).
_tls_cert() {
	local name=$1 ca=$2 subj=$3 d=$T/pki
	printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
		"$ADDR" >"$d/$name.ext"
	openssl req -new -newkey rsa:2048 -nodes -keyout "$d/$name.key" -subj "$subj" \
		-out "$d/$name.csr" 2>>"$d/openssl.log" &&
	openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.pem" -CAkey "$d/$ca.key" \
		-CAcreateserial -days 2 -extfile "$d/$name.ext" -out "$d/$name.pem" \
		2>>"$d/openssl.log" || hard_error "openssl: cannot make $name (see $d/openssl.log)"
}

# _tls_ca NAME SUBJ: a self-signed CA NAME.pem/NAME.key.
_tls_ca() {
	openssl req -x509 -new -newkey rsa:2048 -nodes -days 2 -subj "$2" \
		-keyout "$T/pki/$1.key" -out "$T/pki/$1.pem" 2>>"$T/pki/openssl.log" ||
		hard_error "openssl: cannot make the CA $1"
}

# tls_pki: the PKI above.
tls_pki() {
	mkdir -p "$T/pki"
	_tls_ca ca "/CN=b2bua e2e CA"
	_tls_cert server ca "/CN=$ADDR"
	_tls_cert client ca "/CN=e2e client"
	_tls_ca rogue-ca "/CN=rogue CA"
	_tls_cert rogue rogue-ca "/CN=rogue client"
}

# tls_config [VERIFY]: the TLS lines of the daemon's config (VERIFY: true
# or false, default false), for CFG_EXTRA.
tls_config() {
	printf '%s\n' 'transports = [ "udp", "tls" ];' \
		"tls_port = $TLS_PORT;" "tls_worker_port_base = $TLS_WORKER_PORT_BASE;" \
		"tls_certificate = \"$T/pki/server.pem\";" "tls_key = \"$T/pki/server.key\";" \
		"tls_ca_file = \"$T/pki/ca.pem\";" "tls_verify_peer = ${1:-false};"
}

# tls_options NAME PORT [s_client options...]: one OPTIONS over TLS to
# $ADDR:PORT with openssl s_client; its output in $T/NAME.out.  Returns 0
# when a SIP/2.0 200 came back.
tls_options() {
	local name=$1 port=$2 branch
	shift 2
	branch=z9hG4bK-$name-$RANDOM
	{
		printf 'OPTIONS sip:%s:%s;transport=tls SIP/2.0\r\n' "$ADDR" "$port"
		printf 'Via: SIP/2.0/TLS %s:5999;branch=%s\r\n' "$ADDR" "$branch"
		printf 'Max-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=%s\r\n' "$ADDR" "$RANDOM"
		printf 'To: <sip:%s>\r\nCall-ID: %s-%s@%s\r\nCSeq: 1 OPTIONS\r\n' "$ADDR" \
			"$name" "$RANDOM" "$ADDR"
		printf 'Content-Length: 0\r\n\r\n'
		sleep 1
	} | timeout 10 openssl s_client -connect "$ADDR:$port" -CAfile "$T/pki/ca.pem" \
		-verify_return_error -brief "$@" >"$T/$name.out" 2>&1
	grep -aq "SIP/2.0 200 OK" "$T/$name.out"
}

# tls_garbage_closed PORT: a connection to the TLS port that sends bytes
# that are no TLS handshake is closed by the daemon within 5 s.
tls_garbage_closed() {
	python3 - "$ADDR" "$1" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"OPTIONS sip:x SIP/2.0\r\n" + bytes(range(256)) * 4 + b"\r\n\r\n")
try:
    while s.recv(4096):
        pass          # an alert, then the close
except ConnectionResetError:
    pass
except socket.timeout:
    sys.exit(1)       # still open after 5 s
sys.exit(0)
PY
}

# tls_metric NAME: the sum over the workers of metric NAME from the
# metrics endpoint at $METRICS_URL.
tls_metric() {
	curl -sS --max-time 5 "$METRICS_URL/metrics" |
		awk -v n="$1" '$1 ~ "^"n"({|$)" { s += $2 } END { print s + 0 }'
}

# tls_failures_are N: b2bua_tls_handshake_failures_total is N (for wait_for).
tls_failures_are() { [ "$(tls_metric b2bua_tls_handshake_failures_total)" = "$1" ]; }
