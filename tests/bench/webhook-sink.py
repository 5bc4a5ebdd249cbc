#!/usr/bin/env python3
"""A webhook receiver for benchmarks: answers every POST with 204 at once and counts what came.

Usage: webhook-sink.py PORT   (prints the count on SIGTERM or Ctrl-C, and how many came in each
second, so a reader can tell whether deliveries overlapped a phase of the load tool's scenario)
"""
import collections
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = 0
per_second = collections.Counter()


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global received
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        received += 1
        per_second[int(time.time())] += 1
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def stop(*_):
    print(f"webhook events received: {received}", flush=True)
    for second in sorted(per_second):
        stamp = time.strftime("%H:%M:%S", time.gmtime(second))
        print(f"  {stamp} {per_second[second]}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
