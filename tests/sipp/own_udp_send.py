#!/usr/bin/env python3
"""own_udp_send: send raw datagrams from many source ports (ownership tests).

Design note.  The kernel's SO_REUSEPORT hashing picks the worker that gets a
datagram from its source address and port.  To make copies of one datagram
(an INVITE and its retransmissions, or bad input) land on every worker, this
sends each FILE's bytes once from each of SOCKETS fresh UDP sockets bound
to SRC (port chosen by the kernel), all opened first so that the ports
differ.  It only sends: whatever answers goes to the Via of the message.
Prints the source ports used, one line.

usage: own_udp_send.py SRC DST_ADDR DST_PORT SOCKETS FILE...
"""
import socket
import sys


def main(argv):
    if len(argv) < 6:
        sys.stderr.write(__doc__.split("\n\n")[-1])
        return 2
    src, dst, port, n = argv[1], argv[2], int(argv[3]), int(argv[4])
    payloads = []
    for name in argv[5:]:
        with open(name, "rb") as f:
            payloads.append(f.read())
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        socks.append(s)
    for data in payloads:
        for s in socks:
            s.sendto(data, (dst, port))
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
