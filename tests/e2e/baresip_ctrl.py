#!/usr/bin/env python3
"""baresip_ctrl — send one command to a baresip instance through its ctrl_tcp
module, for tests/e2e/baresip_call.sh.

    baresip_ctrl.py HOST PORT COMMAND [PARAMS]

ctrl_tcp speaks netstrings ("LEN:DATA,") carrying JSON: the request is
{"command": ..., "params": ..., "token": ...}; the answer is the netstring
whose JSON has "response": true and our token (event netstrings, "event":
true, may come before it and are skipped).  Prints the answer's "data" and
exits 0 when it says "ok": true, 1 when "ok": false, 2 when no answer came
within 5 s or the connection failed.  One connection per command: nothing
is kept between runs.
"""
import json
import socket
import sys
import time

TIMEOUT_S = 5.0


def netstring(data):
    return b"%d:%s," % (len(data), data)


def read_netstrings(sock, deadline):
    """Yield each netstring payload received until the deadline."""
    buf = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            return
        buf += chunk
        while True:
            colon = buf.find(b":")
            if colon < 0 or not buf[:colon].isdigit():
                break
            n = int(buf[:colon])
            if len(buf) < colon + 1 + n + 1:
                break
            yield buf[colon + 1:colon + 1 + n]
            buf = buf[colon + 1 + n + 1:]


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    host, port, command = argv[1], int(argv[2]), argv[3]
    token = "b2bua-e2e-%d" % time.monotonic_ns()
    req = {"command": command, "token": token}
    if len(argv) == 5:
        req["params"] = argv[4]
    deadline = time.monotonic() + TIMEOUT_S
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
    except OSError as e:
        print("baresip_ctrl: %s:%d: %s" % (host, port, e), file=sys.stderr)
        return 2
    with sock:
        sock.sendall(netstring(json.dumps(req).encode()))
        for payload in read_netstrings(sock, deadline):
            try:
                msg = json.loads(payload)
            except ValueError:
                continue
            if msg.get("response") and msg.get("token") == token:
                print(msg.get("data", ""))
                return 0 if msg.get("ok") else 1
    print("baresip_ctrl: no answer to '%s' within %.0f s" % (command, TIMEOUT_S),
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
