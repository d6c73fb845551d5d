#!/usr/bin/env python3
"""conn_peer - a hostile or broken SIP peer on TCP, for tests/e2e/tcp_limits.sh
and tcp_bad_input.sh.  Every mode is bounded in time and prints one JSON
object on stdout: what it did and when the daemon closed each connection.

  flood SRC[,SRC...] DST PORT N WAIT
      open N connections from each SRC in turn, send nothing; watch them
      for WAIT s.
      closed_after: per connection, seconds from its connect until the
      daemon closed it (null: still open at the end).
  trickle SRC DST PORT INTERVAL WAIT
      send a REGISTER one byte every INTERVAL s until the daemon closes the
      connection (or WAIT s pass).
  keepalive SRC DST PORT INTERVAL SECONDS
      send a CRLF pair every INTERVAL s for SECONDS s: open at the end?
  send SRC DST PORT KIND WAIT
      send one message (KIND: good, or a bad one: partial, cl_long,
      cl_short, huge, huge_body)
      and read until the daemon closes (or WAIT s pass): what came back.
  udp_options SRC DST PORT
      one OPTIONS over UDP; the status code of the answer (0: none in 2 s).
"""
import json
import select
import socket
import sys
import time


def request(method, dst, port, src, body=b"", content_length=None, extra=b""):
    """A complete SIP request over TCP with a Content-Length (given or real)."""
    cl = len(body) if content_length is None else content_length
    tag = "%d" % (time.monotonic_ns() % 1000000000)
    head = (
        "%s sip:%s:%d SIP/2.0\r\n"
        "Via: SIP/2.0/TCP %s:5999;branch=z9hG4bK-conn-%s\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:peer@%s>;tag=%s\r\n"
        "To: <sip:peer@%s>\r\n"
        "Call-ID: conn-%s@%s\r\n"
        "CSeq: 1 %s\r\n"
        "Contact: <sip:peer@%s:5999;transport=tcp>\r\n"
        % (method, dst, port, src, tag, src, tag, dst, tag, src, method, src)
    ).encode()
    return head + extra + b"Content-Length: %d\r\n\r\n" % cl + body


def connect(src, dst, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect((dst, port))
    s.setblocking(False)
    return s


def drain(s):
    """Read what is there: (bytes, closed)."""
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got, True
            got += chunk
    except BlockingIOError:
        return got, False
    except (ConnectionResetError, BrokenPipeError):
        return got, True


def flood(srcs, dst, port, n, wait):
    socks, t0 = [], []
    for src in srcs.split(","):
        for _ in range(n):
            socks.append(connect(src, dst, port))
            t0.append(time.monotonic())
    closed = [None] * len(socks)
    end = time.monotonic() + wait
    while time.monotonic() < end and None in closed:
        live = [s for i, s in enumerate(socks) if closed[i] is None]
        ready, _, _ = select.select(live, [], [], 0.1)
        for s in ready:
            i = socks.index(s)
            _, gone = drain(s)
            if gone:
                closed[i] = round(time.monotonic() - t0[i], 3)
    for s in socks:
        s.close()
    return {"n": len(socks), "closed_after": closed}


def trickle(src, dst, port, interval, wait):
    msg = request("REGISTER", dst, port, src)
    s = connect(src, dst, port)
    t0 = time.monotonic()
    sent = 0
    closed = None
    while time.monotonic() - t0 < wait and sent < len(msg):
        try:
            s.send(msg[sent:sent + 1])
            sent += 1
        except (ConnectionResetError, BrokenPipeError):
            closed = time.monotonic() - t0
            break
        ready, _, _ = select.select([s], [], [], interval)
        if ready and drain(s)[1]:
            closed = time.monotonic() - t0
            break
    s.close()
    return {"sent": sent, "length": len(msg),
            "closed_after": None if closed is None else round(closed, 3)}


def keepalive(src, dst, port, interval, seconds):
    s = connect(src, dst, port)
    t0 = time.monotonic()
    closed = None
    while time.monotonic() - t0 < seconds:
        try:
            s.send(b"\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            closed = time.monotonic() - t0
            break
        ready, _, _ = select.select([s], [], [], interval)
        if ready:
            _, gone = drain(s)
            if gone:
                closed = time.monotonic() - t0
                break
    s.close()
    return {"seconds": seconds,
            "closed_after": None if closed is None else round(closed, 3)}


def bad_message(kind, src, dst, port):
    if kind == "good":
        return request("OPTIONS", dst, port, src)
    if kind == "partial":
        return request("REGISTER", dst, port, src)[:120]
    if kind == "cl_long":
        return request("OPTIONS", dst, port, src, b"0123456789", content_length=500)
    if kind == "cl_short":
        body = b"v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\n" % (
            src.encode(), src.encode())
        return request("OPTIONS", dst, port, src, body, content_length=5)
    if kind == "huge":
        pad = b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"a" * 100) for i in range(700))
        return request("OPTIONS", dst, port, src)[:-len(b"Content-Length: 0\r\n\r\n")] + pad
    if kind == "huge_body":
        return request("OPTIONS", dst, port, src, b"", content_length=200000)
    raise SystemExit("unknown kind " + kind)


def send(src, dst, port, kind, wait):
    data = bad_message(kind, src, dst, port)
    s = connect(src, dst, port)
    t0 = time.monotonic()
    s.setblocking(True)
    s.settimeout(5)
    try:
        s.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.setblocking(False)
    if kind == "partial":
        time.sleep(0.2)
        s.close()
        return {"kind": kind, "sent": len(data), "closed_after": 0}
    got, closed = b"", None
    while time.monotonic() - t0 < wait:
        ready, _, _ = select.select([s], [], [], 0.1)
        if ready:
            chunk, gone = drain(s)
            got += chunk
            if gone:
                closed = round(time.monotonic() - t0, 3)
                break
    s.close()
    status = [line.decode(errors="replace") for line in got.split(b"\r\n")
              if line.startswith(b"SIP/2.0 ")]
    return {"kind": kind, "sent": len(data), "answers": status, "closed_after": closed}


def udp_options(src, dst, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    msg = request("OPTIONS", dst, port, src).replace(b"SIP/2.0/TCP", b"SIP/2.0/UDP")
    msg = msg.replace(b"transport=tcp", b"transport=udp")
    msg = msg.replace(b";branch=", b";rport;branch=")
    s.sendto(msg, (dst, port))
    s.settimeout(2)
    try:
        data, _ = s.recvfrom(65536)
        return {"code": int(data.split(b" ", 2)[1])}
    except (socket.timeout, ValueError, IndexError):
        return {"code": 0}


def main(argv):
    mode, src, dst, port = argv[1], argv[2], argv[3], int(argv[4])
    if mode == "flood":
        out = flood(src, dst, port, int(argv[5]), float(argv[6]))
    elif mode == "trickle":
        out = trickle(src, dst, port, float(argv[5]), float(argv[6]))
    elif mode == "keepalive":
        out = keepalive(src, dst, port, float(argv[5]), float(argv[6]))
    elif mode == "send":
        out = send(src, dst, port, argv[5], float(argv[6]))
    elif mode == "udp_options":
        out = udp_options(src, dst, port)
    else:
        raise SystemExit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
