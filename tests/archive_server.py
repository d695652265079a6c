"""A local HTTP archive for the download tests: serves files from memory on 127.0.0.1 with
Range support, and can drop streams, ignore Range, answer 503, an HTML error page, any
content type, a body without Content-Length, or answer late."""

import http.server
import socket
import time


class Archive(http.server.ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) with Range support; records every request.

    ``drop_after``: URL path -> number of requests (counting from the first) whose body is
    cut at half (the full Content-Length is announced, then the connection is closed).
    ``ignore_range``: answer 200 with the whole file even when a Range is asked for.
    ``content_types``: URL path -> Content-Type of its answers (default application/octet-stream).
    ``no_length``: URL paths answered without Content-Length: the body ends when the connection
    closes, so a drop (``drop_after``) looks like the end of the file.
    ``delay``: URL path -> seconds to wait before answering, one entry per request (a timeout).
    ``stall``: URL path -> threading.Event: the first answer sends half its body, then waits for
    the event before the rest (a transfer caught mid-stream, for a test to kill its client).
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.requests, self.drop_after, self.ignore_range = {}, [], {}, False
        self.unavailable = {}  # URL path -> number of 503 answers before serving
        self.html = set()  # URL paths answered as text/html (an archive's error page)
        self.content_types, self.no_length, self.delay, self.stall = {}, set(), {}, {}

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeout) or a dropped stream is what the tests ask for


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path)
        if srv.delay.get(self.path):
            time.sleep(srv.delay[self.path].pop(0))
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
        if self.path in srv.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        content_type = "text/html" if self.path in srv.html else "application/octet-stream"
        self.send_header("Content-Type", srv.content_types.get(self.path, content_type))
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
        stall = srv.stall.pop(self.path, None)
        if stall is not None:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            stall.wait(120)
            body = body[len(body) // 2 :]
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client was killed meanwhile
