"""A UDP peer for spec/datagram_*_spec.lua, on Python's socket module.

    peer.py echo PORTFILE HOST   answers each datagram with b"echo:" + it
                                 (one of 60000 bytes or more: with itself,
                                 which may be as large as UDP allows), from
                                 HOST port 0; writes its port to PORTFILE
    peer.py flood PORT N         sends b"1" .. b"N" to 127.0.0.1:PORT as fast
                                 as it can, then b"end" a few times, and exits
"""
import os
import socket
import sys
import time


def echo(portfile, host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data if len(data) >= 60000 else b"echo:" + data, addr)


def flood(port, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(1, n + 1):
        s.sendto(b"%d" % i, ("127.0.0.1", port))
    for _ in range(5):  # the kernel may drop some of the flood, not all these
        time.sleep(0.05)
        s.sendto(b"end", ("127.0.0.1", port))


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(sys.argv[2], sys.argv[3])
    else:
        flood(int(sys.argv[2]), int(sys.argv[3]))
