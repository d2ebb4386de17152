"""Scripted peers for spec/socket_compat_spec.lua: the same replies for the
run on real LuaSocket and the run on lasync.socket.

argv: the file to write "TCP UDP CLOSED" ports to. On TCP, a client's first
line names a script (SCRIPTS); UDP answers each datagram with "pong:" + it.
CLOSED is a port that was bound and closed again: nothing listens there.
"""
import socket
import socketserver
import sys
import threading
import time


def hold(conn):
    """Keeps the connection open until the client closes it."""
    while conn.recv(4096):
        pass


def lines(conn):
    conn.sendall(b"one\r\ntwo\n\nthree")


def count(conn):
    conn.sendall(b"0123456789")


def partial(conn):
    conn.sendall(b"abc")
    hold(conn)


def silent(conn):
    hold(conn)


def echo(conn):
    while True:
        data = conn.recv(4096)
        if not data:
            return
        conn.sendall(data)


def big(conn):
    conn.sendall(b"x" * 100000 + b"\n" + b"y" * 70000)


SCRIPTS = {"lines": lines, "count": count, "partial": partial,
           "silent": silent, "echo": echo, "big": big}


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        name = b""
        while not name.endswith(b"\n"):
            c = self.request.recv(1)
            if not c:
                return
            name += c
        SCRIPTS[name.strip().decode()](self.request)
        # A pause, so that "closed" is the same for a client which has not
        # read everything yet: no RST from unread data on our side.
        time.sleep(0.05)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def udp_loop(sock):
    while True:
        data, addr = sock.recvfrom(65536)
        sock.sendto(b"pong:" + data, addr)


def main():
    tcp = Server(("127.0.0.1", 0), Handler)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    threading.Thread(target=udp_loop, args=(udp,), daemon=True).start()
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("%d %d %d\n" % (tcp.server_address[1], udp.getsockname()[1],
                                closed_port))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    tcp.serve_forever()


main()
