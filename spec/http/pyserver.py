"""An HTTP/1.1 server no one here wrote (Python's http.server), for the
client specs of lasync.http: python3 pyserver.py PORTFILE [--tls CERT KEY].
Writes its port to PORTFILE once listening; runs until killed."""
import http.server
import os
import ssl
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, body, status=200, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/hello":
            self.send_body(b"hello")
        elif path == "/conn":  # which connection: the client's port
            self.send_body(str(self.client_address[1]).encode())
        elif path == "/headers":
            self.send_body(self.headers.get("X-Test", "").encode(),
                           headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one ", b"two ", b"three"):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
        elif path == "/close":  # a body that ends with the connection
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until close")
            self.close_connection = True
        elif path == "/drop":  # says keep-alive, then closes
            self.send_body(b"dropped")
            self.close_connection = True
        elif path == "/lines":
            body = b"".join(b"line %d\r\n" % i for i in range(1, 1001))
            self.send_body(body)
        elif path == "/big":
            self.send_body(b"x" * (1 << 20))
        elif path == "/slow":
            time.sleep(5)
            self.send_body(b"late")
        elif path == "/redirect":
            self.send_body(b"", 302, [("Location", "/hello")])
        elif path == "/redirect-abs":
            port = self.server.server_address[1]
            self.send_body(b"", 301, [("Location", "http://127.0.0.1:%d/redirect" % port)])
        elif path == "/loop":
            self.send_body(b"", 302, [("Location", "/loop")])
        elif path == "/missing":
            self.send_body(b"no such thing", 404)
        elif path == "/garbage":
            self.wfile.write(b"HTTP/1.1 abc nonsense\r\n\r\n")
            self.close_connection = True
        else:
            self.send_body(b"unknown path", 404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if self.path == "/redirect":
            self.send_body(b"", 302, [("Location", "/hello")])
            return
        self.send_body(b"%s %s" % (self.command.encode(), body))

    do_PUT = do_POST


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if len(sys.argv) > 2 and sys.argv[2] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(sys.argv[1] + ".part", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(sys.argv[1] + ".part", sys.argv[1])
    server.serve_forever()


main()
