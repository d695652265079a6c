"""A local HTTP archive for the download tests: serves files from memory on 127.0.0.1 with
Range support, and can drop streams, ignore Range, answer 503 or an HTML error page."""

import http.server
import socket


class Archive(http.server.ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) with Range support; records every request.

    ``drop_after``: URL path -> number of requests (counting from the first) whose body is
    cut at half (the full Content-Length is announced, then the connection is closed).
    ``ignore_range``: answer 200 with the whole file even when a Range is asked for.
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.requests, self.drop_after, self.ignore_range = {}, [], {}, False
        self.unavailable = {}  # URL path -> number of 503 answers before serving
        self.html = set()  # URL paths answered as text/html (an archive's error page)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/"



class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path)
        if srv.unavailable.get(self.path, 0):
            srv.unavailable[self.path] -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/html" if self.path in srv.html else "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        drops = srv.drop_after.get(self.path, 0)
        if drops:
            srv.drop_after[self.path] = drops - 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)
