#!/usr/bin/env python3
"""tcp_caller: a SIP caller over TCP (or TLS) that opens a new connection for each step.

Design note.  sipp keeps a call's messages on the connection it opened (in
-t t1 and -t tn alike), so it cannot be the caller that closes its
connection and comes back on another one, landing on a worker that does not
own the call (docs/architecture.md, "A request that arrives on another
connection").  This client can: each STEP opens a fresh connection to where
it says, sends one request, reads until that request's final answer and,
for an INVITE's 2xx, sends the ACK on the same connection.  Its Contact is
a TCP port it listens on, where the step "answer:BYE" takes a BYE from the
callee's side (on a connection b2bua opens to that Contact) and answers
it 200.  It prints one
line per message ("sent INVITE", "recv 200/INVITE", "conn 1 own@1", ...)
and exits 0 when every request got a 2xx, 1 at the first that did not (or
timed out), 2 on a usage error.

A worker is named by its index; "owner" is the worker whose own port our
200's Contact names (the call's owner), "other" the first worker that is
not the owner.  A connection to the public port lands where the kernel
hashes it; "public@N" retries (from new source ports) until worker N
accepted it, found with `ss -tnp` and the pids in PIDS_FILE ("INDEX PID"
lines, read at each step: a restarted worker has a new pid).

With --tls CAFILE every connection the caller opens is TLS (Python's ssl
module: TLS 1.2 or newer, the daemon's certificate checked against CAFILE
and the address ADDR, no client certificate), its Via says TLS and its
Contact ";transport=tls"; PUBLIC_PORT and PORT_BASE are then the daemon's
TLS ports (tls_port, tls_worker_port_base).  The Contact's listener stays
plain TCP, so "answer:BYE" is refused with --tls (usage error): a TLS
caller here always hangs up itself.

usage: tcp_caller.py [--tls CAFILE] ADDR PUBLIC_PORT PORT_BASE WORKERS PIDS_FILE STEP...
  STEP: invite:DEST | reinvite:DEST | bye:DEST | answer:BYE (30 s) |
        wait:FILE (until FILE exists, 60 s)
  DEST: public | public@W | own@W   (W: an index, "owner" or "other")
  The callee is user 1000, or $TCP_CALLER_USER.
"""
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import time

TIMEOUT = 10.0


def rand(n=10):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


class Conn:
    """One connection and the bytes read from it not parsed yet."""

    def __init__(self, addr, port, tls=None):
        # From our address: the test trusts it (its static route needs that).
        self.sock = socket.create_connection((addr, port), timeout=TIMEOUT,
                                             source_address=(addr, 0))
        if tls is not None:
            # The handshake runs here, bounded by TIMEOUT; a failure raises.
            self.sock = tls.wrap_socket(self.sock, server_hostname=addr)
        self.buf = b""

    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, text):
        self.sock.sendall(text.encode())

    def read_message(self, deadline):
        """One SIP message (start line, headers dict of lists, body) or None."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode(errors="replace")
                m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                if len(self.buf) >= end + 4 + length:
                    body = self.buf[end + 4:end + 4 + length].decode(errors="replace")
                    self.buf = self.buf[end + 4 + length:]
                    lines = head.split("\r\n")
                    hdrs = {}
                    for line in lines[1:]:
                        name, _, value = line.partition(":")
                        hdrs.setdefault(name.strip().lower(), []).append(value.strip())
                    return lines[0], hdrs, body
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self.buf += data.lstrip(b"\r\n") if not self.buf else data

    def close(self):
        self.sock.close()


class Caller:
    def __init__(self, addr, public, base, workers, pids_file, tls=None):
        self.addr, self.public, self.base = addr, public, base
        self.tls = tls
        self.transport = "tls" if tls is not None else "tcp"
        self.workers, self.pids_file = workers, pids_file
        self.call_id = rand(16) + "@tcp-caller"
        self.from_tag = rand()
        user = os.environ.get("TCP_CALLER_USER", "1000")
        self.to_hdr = "<sip:%s@%s:%d>" % (user, addr, public)
        self.cseq = 0
        self.target = "sip:%s@%s:%d" % (user, addr, public)
        self.owner = None
        self.sdp_version = 1
        self.conns = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((addr, 0))
        self.listener.listen(4)

    # -------------------------------------------------------------- where to
    def worker_of(self, name):
        if name == "owner":
            return self.owner
        if name == "other":
            return next(w for w in range(self.workers) if w != self.owner)
        return int(name)

    def pid_of(self, worker):
        with open(self.pids_file) as f:
            for line in f:
                idx, pid = line.split()
                if int(idx) == worker:
                    return pid
        raise SystemExit("tcp_caller: no pid for worker %d in %s" % (worker, self.pids_file))

    def accepted_by(self, conn):
        """The pid of the process that accepted conn (ss), or None."""
        for _ in range(100):
            out = subprocess.run(
                ["ss", "-tnpH", "state", "established",
                 "( sport = :%d and dport = :%d )" % (self.public, conn.local_port())],
                capture_output=True, text=True).stdout
            m = re.search(r"pid=(\d+)", out)
            if m:
                return m.group(1)
            time.sleep(0.02)
        return None

    def connect(self, dest):
        where, _, who = dest.partition("@")
        if where == "own":
            w = self.worker_of(who)
            conn = Conn(self.addr, self.base + w, self.tls)
        elif where == "public" and not who:
            conn = Conn(self.addr, self.public, self.tls)
        elif where == "public":
            pid = self.pid_of(self.worker_of(who))
            for _ in range(64):
                conn = Conn(self.addr, self.public, self.tls)
                if self.accepted_by(conn) == pid:
                    break
                conn.close()
            else:
                raise SystemExit("tcp_caller: worker %s never accepted a connection" % who)
        else:
            raise SystemExit("tcp_caller: bad destination %s" % dest)
        self.conns += 1
        print("conn %d %s port %d" % (self.conns, dest, conn.local_port()), flush=True)
        return conn

    # -------------------------------------------------------------- messages
    def request(self, conn, method, cseq, body="", branch=None):
        lport = conn.local_port()
        lines = [
            "%s %s SIP/2.0" % (method, self.target),
            "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%s;rport" % (
                self.transport.upper(), self.addr, lport, branch or rand()),
            "Max-Forwards: 70",
            "From: <sip:caller@%s>;tag=%s" % (self.addr, self.from_tag),
            "To: %s" % self.to_hdr,
            "Call-ID: %s" % self.call_id,
            "CSeq: %d %s" % (cseq, method),
            "Contact: <sip:caller@%s:%d;transport=%s>" % (
                self.addr, self.listener.getsockname()[1], self.transport),
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append("Content-Length: %d" % len(body.encode()))
        conn.send("\r\n".join(lines) + "\r\n\r\n" + body)
        print("sent %s" % method, flush=True)

    def sdp(self):
        self.sdp_version += 1
        return ("v=0\r\no=caller 1 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
                "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                % (self.sdp_version, self.addr, self.addr))

    def final(self, conn, method, cseq):
        """Read until the final answer to (cseq, method): (status, headers)."""
        deadline = time.time() + TIMEOUT
        while True:
            msg = conn.read_message(deadline)
            if msg is None:
                print("timeout waiting for the answer to %s" % method, flush=True)
                return None, None
            start, hdrs, _ = msg
            if not start.startswith("SIP/2.0 "):
                print("recv %s (a request, ignored)" % start.split()[0], flush=True)
                continue
            status = int(start.split()[1])
            cs = hdrs.get("cseq", ["0 X"])[0].split()
            print("recv %d/%s" % (status, cs[1]), flush=True)
            if int(cs[0]) == cseq and cs[1] == method and status >= 200:
                return status, hdrs

    def transaction(self, dest, method):
        conn = self.connect(dest)
        self.cseq += 1
        cseq = self.cseq
        self.request(conn, method, cseq, self.sdp() if method == "INVITE" else "")
        status, hdrs = self.final(conn, method, cseq)
        if status is not None and method == "INVITE" and status < 300:
            if ";tag=" not in self.to_hdr:
                self.to_hdr = hdrs["to"][0]
            contact = re.search(r"<([^>]+)>", hdrs["contact"][0]).group(1)
            self.target = contact
            port = re.search(r":(\d+)(;|$)", contact)
            if port and self.owner is None:
                self.owner = int(port.group(1)) - self.base
                print("owner %d" % self.owner, flush=True)
            self.request(conn, "ACK", cseq)
        self.close(conn)
        return status

    def close(self, conn):
        """Close conn and wait (2 s at most) until b2bua closed its end too, so
        that the next step comes after b2bua saw this connection end (as a
        caller that comes back later would)."""
        lport = conn.local_port()
        conn.close()
        for _ in range(100):
            out = subprocess.run(["ss", "-tnH", "( dport = :%d )" % lport],
                                 capture_output=True, text=True).stdout
            if not out.strip():
                return
            time.sleep(0.02)

    def answer(self, method):
        """Take `method` on a connection to our Contact and answer it 200."""
        self.listener.settimeout(30)
        try:
            sock, _ = self.listener.accept()
        except socket.timeout:
            print("timeout waiting for a connection to our Contact", flush=True)
            return None
        conn = Conn.__new__(Conn)
        conn.sock, conn.buf = sock, b""
        msg = conn.read_message(time.time() + TIMEOUT)
        if msg is None or not msg[0].startswith(method + " "):
            print("no %s on the connection to our Contact" % method, flush=True)
            return None
        print("recv %s" % method, flush=True)
        _, hdrs, _ = msg
        lines = ["SIP/2.0 200 OK"]
        lines += ["Via: %s" % v for v in hdrs.get("via", [])]
        for name in ("from", "to", "call-id", "cseq"):
            lines.append("%s: %s" % (name.title(), hdrs[name][0]))
        lines.append("Content-Length: 0")
        conn.send("\r\n".join(lines) + "\r\n\r\n")
        print("sent 200/%s" % method, flush=True)
        conn.close()
        return 200


def tls_context(cafile):
    """A client context that trusts only the test's CA."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def main(argv):
    tls = None
    if len(argv) > 2 and argv[1] == "--tls":
        tls = tls_context(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) < 7:
        sys.stderr.write(__doc__.split("\n\n")[-1])
        return 2
    if tls is not None and any(step.startswith("answer:") for step in argv[6:]):
        sys.stderr.write("tcp_caller: answer: needs a plain TCP Contact, not --tls\n")
        return 2
    caller = Caller(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5], tls)
    print("call-id %s" % caller.call_id, flush=True)
    for step in argv[6:]:
        what, _, arg = step.partition(":")
        if what == "wait":
            deadline = time.time() + 60
            while not os.path.exists(arg) and time.time() < deadline:
                time.sleep(0.05)
            continue
        if what == "answer":
            status = caller.answer(arg)
            print("final %s %s" % (what, status), flush=True)
            if status is None:
                return 1
            continue
        method = {"invite": "INVITE", "reinvite": "INVITE", "bye": "BYE"}.get(what)
        if method is None:
            sys.stderr.write("tcp_caller: bad step %s\n" % step)
            return 2
        status = caller.transaction(arg, method)
        print("final %s %s" % (what, status), flush=True)
        if status is None or status >= 300:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
