#!/usr/bin/env python3
"""A webhook receiver for benchmarks: answers every POST with 204 at once and counts what came.

Usage: webhook-sink.py PORT   (prints the count on SIGTERM or Ctrl-C)
"""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = 0


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global received
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        received += 1
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def stop(*_):
    print(f"webhook events received: {received}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
