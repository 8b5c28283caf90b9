#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""The hostile-server run: every hostile input of the second hardening round,
sent to the real programs as a user runs them, each case bounded in time.

A hostile peer on loopback (an HTTP/1.1 server that speaks just enough of a
backend or of etcd's v3 JSON gateway to misbehave, or a client of the stats
port) against:
  - the stats server (http_workload --stats-addr),
  - the HTTP connector (http_workload --fresh: one connection per request,
    so each request's own error is counted),
  - the etcd resolver (qorb-resolve --etcd),
  - etcd registration (tcp_echo_server --register).
Each case checks that the program ended (or kept serving) within a bounded
time, with bounded memory (the child's peak RSS from wait4), no abort, a
clear error, and no descriptor left behind.

    hostile_run.py --http-workload PATH --qorb-resolve PATH --tcp-echo-server PATH [-k CASE]

Prints one line per case and a closing 'N passed, N failed' line; exits 1
when any case failed.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

MiB = 1024 * 1024
# A generous ceiling for any program's peak RSS in these cases (sanitizer
# builds included). The unbounded behaviours this guards against reached
# 962 MB (chunk extension) and grew without end (watch line).
MAX_RSS = int(os.environ.get("QORB_HOSTILE_MAX_RSS_MIB", "400")) * MiB


# --- a hostile HTTP/1.1 server ------------------------------------------------

class Request:
    def __init__(self, method, target, headers, body):
        self.method, self.target, self.headers, self.body = method, target, headers, body


def read_request(conn, buf):
    """Reads one request from conn; returns (Request or None, rest of buffer)."""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline or len(buf) > 64 * 1024:
            return None, buf
        try:
            data = conn.recv(65536)
        except OSError:
            return None, buf
        if not data:
            return None, buf
        buf += data
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target = lines[0].split(" ")[:2]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(buf) < length:
        try:
            data = conn.recv(65536)
        except OSError:
            return None, buf
        if not data:
            return None, buf
        buf += data
    return Request(method, target, headers, buf[:length]), buf[length:]


class HostileServer:
    """Accepts on 127.0.0.1:0; `respond(server, conn, request)` answers each
    request (returns False to close). Counts connections and requests."""

    def __init__(self, respond):
        self.respond = respond
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []  # (path, body)
        self.sent = 0  # bytes written by streaming responses, in all
        self.most_sent = 0  # ...and the most to one response
        self.peer_closed_early = False
        self.stopping = False
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        conn.settimeout(10)
        buf = b""
        try:
            while not self.stopping:
                req, buf = read_request(conn, buf)
                if req is None:
                    return
                with self.lock:
                    self.requests.append((req.target, req.body))
                if not self.respond(self, conn, req):
                    return
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stream(self, conn, head, filler, total, tail):
        """Sends head, then `total` bytes of `filler` blocks, then tail;
        stops (and notes it) when the peer closes first."""
        sent = 0
        try:
            conn.sendall(head)
            deadline = time.monotonic() + 20
            while sent < total and time.monotonic() < deadline and not self.stopping:
                conn.sendall(filler)
                sent += len(filler)
                with self.lock:
                    self.sent += len(filler)
            conn.sendall(tail)
        except OSError:
            with self.lock:
                self.peer_closed_early = True
                self.most_sent = max(self.most_sent, sent)
            return False
        with self.lock:
            self.most_sent = max(self.most_sent, sent)
        return True

    def count(self, path):
        with self.lock:
            return sum(1 for p, _ in self.requests if path in p)

    def close(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass


def http_response(status, body=b"", extra=""):
    reason = {200: "OK", 100: "Continue", 103: "Early Hints"}.get(status, "X")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


TRAILER_64K = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: "
               + b"a" * 65536 + b"\r\n\r\n")


# --- running a program ----------------------------------------------------------

class Run:
    def __init__(self, argv, env=None):
        self.argv = argv
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=e)
        self.started = time.monotonic()
        self.out = []
        self.err = []
        self.status = None
        self.rusage = None
        self.seconds = None
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True).start()

    @staticmethod
    def _drain(pipe, into):
        for line in iter(pipe.readline, b""):
            into.append(line.decode("utf-8", "replace"))

    def wait_for_output(self, pattern, seconds):
        deadline = time.monotonic() + seconds
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            if any(rx.search(l) for l in self.out + self.err):
                return True
            if not self.alive():
                return any(rx.search(l) for l in self.out + self.err)
            time.sleep(0.02)
        return False

    def alive(self):
        """Whether the process still runs (without reaping it: wait4 does)."""
        return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return -1

    def wait(self, seconds, stop_signal=None):
        """Waits up to `seconds`; then sends stop_signal (or SIGKILL) and
        reaps. Returns the exit status (negative: killed by that signal)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                return self._reaped(status, usage)
            time.sleep(0.02)
        if stop_signal is not None:
            self.proc.send_signal(stop_signal)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    return self._reaped(status, usage)
                time.sleep(0.02)
        self.proc.kill()
        _, status, usage = os.wait4(self.proc.pid, 0)
        self._reaped(status, usage)
        raise Failure(f"{os.path.basename(self.argv[0])} did not end within its bound "
                      f"({seconds} s and 10 s after a signal)")

    def _reaped(self, status, usage):
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.status = self.proc.returncode
        self.rusage = usage
        self.seconds = time.monotonic() - self.started
        time.sleep(0.05)  # let the drain threads take the last lines
        return self.status

    def peak_rss(self):
        return self.rusage.ru_maxrss * 1024 if self.rusage else 0

    def text(self):
        return "".join(self.out) + "".join(self.err)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def no_abort(run):
    check(run.status is not None and run.status not in (-signal.SIGABRT, 134, -signal.SIGSEGV),
          f"{os.path.basename(run.argv[0])} aborted (status {run.status}):\n{run.text()[-2000:]}")
    check(run.peak_rss() < MAX_RSS,
          f"peak RSS {run.peak_rss() / MiB:.0f} MiB is over {MAX_RSS / MiB:.0f} MiB")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- the cases ------------------------------------------------------------------

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def http_fresh(args, server, seconds=1.5):
    run = Run([args.http_workload, "--backend", f"127.0.0.1:{server.port}", "--fresh",
               "--claimers", "1", "--duration", str(seconds)])
    run.wait(seconds + 15, signal.SIGTERM)
    return run


@case
def http_connector_trailer_64k(args):
    server = HostileServer(lambda s, c, r: c.sendall(TRAILER_64K) or True)
    try:
        run = http_fresh(args, server)
    finally:
        server.close()
    no_abort(run)
    # 1: no request succeeded (as it should not); anything else is a crash.
    check(run.status in (0, 1), f"http_workload exited {run.status}:\n{run.text()[-2000:]}")
    check(re.search(r"error x\d+: .*(trailer|over \d+ bytes)", run.text()),
          f"no error naming the trailer limit:\n{run.text()[-2000:]}")
    return f"{run.seconds:.1f} s, peak RSS {run.peak_rss() / MiB:.0f} MiB"


@case
def http_connector_chunk_extension_300mb(args):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;"
    server = HostileServer(
        lambda s, c, r: s.stream(c, head, b"x" * MiB, 300 * MiB, b"\r\nok\r\n0\r\n\r\n"))
    try:
        run = http_fresh(args, server)
    finally:
        server.close()
    no_abort(run)
    check(run.status in (0, 1), f"http_workload exited {run.status}:\n{run.text()[-2000:]}")
    check(re.search(r"error x\d+: .*(extension|over \d+ bytes)", run.text()),
          f"no error naming the chunk-extension limit:\n{run.text()[-2000:]}")
    return f"{run.seconds:.1f} s, peak RSS {run.peak_rss() / MiB:.0f} MiB, the server wrote at most {server.most_sent / MiB:.0f} MiB of one response"


def interim_then_200(interims):
    def respond(s, c, r):
        c.sendall(interims + http_response(200, b"ok"))
        return True
    return respond


@case
def http_connector_100_continue_then_200(args):
    server = HostileServer(interim_then_200(b"HTTP/1.1 100 Continue\r\n\r\n"))
    try:
        run = http_fresh(args, server)
    finally:
        server.close()
    no_abort(run)
    check(re.search(r"requests in .* 0 errors", run.text()) and
          not re.search(r"^0 requests", run.text(), re.M),
          f"the final 200 was not returned:\n{run.text()[-2000:]}")
    return f"{run.seconds:.1f} s"


@case
def http_connector_103_early_hints_then_200(args):
    server = HostileServer(interim_then_200(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"))
    try:
        run = http_fresh(args, server)
    finally:
        server.close()
    no_abort(run)
    check(re.search(r"requests in .* 0 errors", run.text()) and
          not re.search(r"^0 requests", run.text(), re.M),
          f"the final 200 was not returned:\n{run.text()[-2000:]}")
    return f"{run.seconds:.1f} s"


@case
def http_connector_1000_interim_responses(args):
    server = HostileServer(interim_then_200(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000))
    try:
        run = http_fresh(args, server)
    finally:
        server.close()
    no_abort(run)
    check(re.search(r"error x\d+: .*(interim|1xx)", run.text()),
          f"no error naming the interim-response bound:\n{run.text()[-2000:]}")
    return f"{run.seconds:.1f} s"


def start_stats_host(args):
    backend = HostileServer(lambda s, c, r: c.sendall(http_response(200, b"ok")) or True)
    port = free_port()
    run = Run([args.http_workload, "--backend", f"127.0.0.1:{backend.port}", "--claimers", "1",
               "--duration", "30", "--stats-addr", f"127.0.0.1:{port}"])
    check(run.wait_for_output(r"stats: http://", 20), f"no stats server:\n{run.text()}")
    return backend, run, port


def settle_fds(run, baseline, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if run.fds() <= baseline:
            return run.fds()
        time.sleep(0.05)
    return run.fds()


def stats_get(port, path="/stats"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@case
def stats_server_trailer_64k(args):
    backend, run, port = start_stats_host(args)
    try:
        stats_get(port)  # warm: the server's own descriptors are open
        baseline = run.fds()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\nX-T: " + b"a" * 65536 + b"\r\n\r\n")
            answer = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except OSError:
                pass
        check(answer.startswith(b"HTTP/1.1 431"), f"answered {answer[:80]!r}, not 431")
        check(run.alive(), f"the process ended:\n{run.text()[-2000:]}")
        check(stats_get(port).startswith(b"HTTP/1.1 200"), "the stats server stopped serving")
        fds = settle_fds(run, baseline)
        check(fds <= baseline, f"{fds - baseline} descriptors left (of {fds})")
    finally:
        run.wait(0, signal.SIGTERM)
        backend.close()
    no_abort(run)
    return f"431, descriptors back to {baseline}, peak RSS {run.peak_rss() / MiB:.0f} MiB"


@case
def stats_server_chunk_extension_300mb(args):
    backend, run, port = start_stats_host(args)
    sent = 0
    try:
        stats_get(port)
        baseline = run.fds()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;")
            block = b"x" * MiB
            deadline = time.monotonic() + 20
            try:
                while sent < 300 * MiB and time.monotonic() < deadline:
                    s.sendall(block)
                    sent += len(block)
            except OSError:
                pass
        check(sent < 300 * MiB, "the server read a 300 MB chunk extension to its end")
        check(run.alive(), f"the process ended:\n{run.text()[-2000:]}")
        check(stats_get(port).startswith(b"HTTP/1.1 200"), "the stats server stopped serving")
        fds = settle_fds(run, baseline)
        check(fds <= baseline, f"{fds - baseline} descriptors left (of {fds})")
    finally:
        run.wait(0, signal.SIGTERM)
        backend.close()
    no_abort(run)
    return f"closed after {sent / MiB:.0f} MiB sent, peak RSS {run.peak_rss() / MiB:.0f} MiB"


# etcd's gateway, hostile in one way each.

def etcd_reply(obj):
    return http_response(200, json.dumps(obj).encode(), "Content-Type: application/json\r\n")


def etcd_gateway(range_reply=None, watch=None, grant=None, keepalive=None):
    """A gateway answering kv/range, watch, lease/grant, kv/put,
    lease/keepalive and lease/revoke; each hostile part replaceable."""
    def respond(s, c, r):
        if r.target.endswith("kv/range"):
            if range_reply:
                return range_reply(s, c, r)
            c.sendall(etcd_reply({"header": {"revision": "5"}}))
            return True
        if r.target.endswith("watch"):
            if watch:
                return watch(s, c, r)
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            time.sleep(10)
            return False
        if r.target.endswith("lease/grant"):
            if grant:
                return grant(s, c, r)
            c.sendall(etcd_reply({"header": {"revision": "5"}, "ID": "7", "TTL": "10"}))
            return True
        if r.target.endswith("lease/keepalive"):
            if keepalive:
                return keepalive(s, c, r)
            c.sendall(etcd_reply({"result": {"header": {"revision": "5"}, "ID": "7", "TTL": "10"}}))
            return True
        c.sendall(etcd_reply({"header": {"revision": "5"}}))
        return True
    return respond


def resolve_once(args, server, seconds=1):
    run = Run([args.qorb_resolve, "--etcd", f"http://127.0.0.1:{server.port}", "--timeout",
               str(seconds), "/svc/"])
    run.wait(seconds + 15, signal.SIGTERM)
    return run


@case
def etcd_resolver_trailer_64k(args):
    server = HostileServer(etcd_gateway(range_reply=lambda s, c, r: c.sendall(TRAILER_64K) and False))
    try:
        run = resolve_once(args, server)
    finally:
        server.close()
    no_abort(run)
    check(run.status != 0, "qorb-resolve succeeded on a reply with a 64 KiB trailer")
    check(re.search(r"trailer|over \d+ bytes", run.text()),
          f"no error naming the limit:\n{run.text()[-2000:]}")
    return f"{run.seconds:.1f} s, status {run.status}"


@case
def etcd_resolver_chunk_extension_300mb(args):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;"
    server = HostileServer(etcd_gateway(
        range_reply=lambda s, c, r: s.stream(c, head, b"x" * MiB, 300 * MiB, b"\r\n{}\r\n0\r\n\r\n")))
    try:
        run = resolve_once(args, server)
    finally:
        server.close()
    no_abort(run)
    check(run.status != 0, "qorb-resolve succeeded on a 300 MB chunk extension")
    return f"{run.seconds:.1f} s, peak RSS {run.peak_rss() / MiB:.0f} MiB, the server wrote at most {server.most_sent / MiB:.0f} MiB of one response"


def watch_stream(first, filler=None, total=0):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    def chunk(data):
        return b"%x\r\n" % len(data) + data + b"\r\n"

    def respond(s, c, r):
        if filler is None:
            c.sendall(head + b"".join(chunk(m) for m in first) + b"0\r\n\r\n")
            return False
        return s.stream(c, head + b"".join(chunk(m) for m in first), chunk(filler), total, b"")
    return respond


@case
def etcd_resolver_endless_watch_line(args):
    server = HostileServer(etcd_gateway(watch=watch_stream(
        [b'{"result":{"header":{"revision":"5"},"created":true}}\n', b'{"result":{"events":['],
        filler=b"x" * MiB, total=200 * MiB)))
    try:
        run = Run([args.qorb_resolve, "--etcd", f"http://127.0.0.1:{server.port}", "--watch",
                   "--timeout", "2", "/svc/"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not server.peer_closed_early and server.sent < 200 * MiB:
            time.sleep(0.05)
        run.wait(0, signal.SIGTERM)
    finally:
        server.close()
    no_abort(run)
    check(server.peer_closed_early, f"the resolver read {server.most_sent / MiB:.0f} MiB of one line")
    return f"closed the stream after {server.most_sent / MiB:.0f} MiB, peak RSS {run.peak_rss() / MiB:.0f} MiB"


@case
def etcd_resolver_watch_cancelled_every_time(args):
    cancelled = b'{"result":{"header":{"revision":"5"},"created":true}}\n' \
                b'{"result":{"header":{"revision":"5"},"canceled":true,"compact_revision":"4"}}\n'
    server = HostileServer(etcd_gateway(watch=watch_stream([cancelled])))
    try:
        run = Run([args.qorb_resolve, "--etcd", f"http://127.0.0.1:{server.port}", "--watch",
                   "--timeout", "2", "/svc/"])
        time.sleep(4)  # the window in which retries are counted
        run.wait(0, signal.SIGTERM)
        reads, watches = server.count("kv/range"), server.count("watch")
    finally:
        server.close()
    no_abort(run)
    check(watches <= 20, f"{watches} watches and {reads} reads in 4 s: no backoff")
    return f"{reads} reads, {watches} watches in 4 s"


@case
def etcd_resolver_revision_int64_max(args):
    server = HostileServer(etcd_gateway(
        range_reply=lambda s, c, r: c.sendall(etcd_reply(
            {"header": {"revision": "9223372036854775807"}})) or True))
    try:
        run = Run([args.qorb_resolve, "--etcd", f"http://127.0.0.1:{server.port}", "--watch",
                   "--timeout", "2", "/svc/"])
        time.sleep(2)
        run.wait(0, signal.SIGTERM)
        with server.lock:
            bodies = [b for p, b in server.requests if p.endswith("watch")]
    finally:
        server.close()
    no_abort(run)
    for body in bodies:
        start = json.loads(body).get("create_request", {}).get("start_revision", "0")
        check(int(start) >= 0, f"asked for start_revision={start}")
    return f"{len(bodies)} watch requests, none with a negative revision"


@case
def etcd_registration_ttl_int64_max(args):
    server = HostileServer(etcd_gateway(
        grant=lambda s, c, r: c.sendall(etcd_reply(
            {"header": {"revision": "5"}, "ID": "7", "TTL": "9223372036854775807"})) or True,
        keepalive=lambda s, c, r: c.sendall(etcd_reply(
            {"result": {"header": {"revision": "5"}, "ID": "7",
                        "TTL": "9223372036854775807"}})) or True))
    try:
        run = Run([args.tcp_echo_server, "--register", f"http://127.0.0.1:{server.port}/svc/",
                   "--ttl", "10", "127.0.0.1:0"])
        time.sleep(3)
        run.wait(0, signal.SIGTERM)
        keepalives = server.count("lease/keepalive")
    finally:
        server.close()
    no_abort(run)
    check(keepalives <= 3, f"{keepalives} keep-alives in 3 s for a 10 s lease")
    return f"{keepalives} keep-alives in 3 s"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--http-workload", required=True)
    p.add_argument("--qorb-resolve", required=True)
    p.add_argument("--tcp-echo-server", required=True)
    p.add_argument("-k", action="append", default=[], help="run only cases containing this")
    args = p.parse_args()
    passed = failed = 0
    for name, fn in CASES.items():
        if args.k and not any(k in name for k in args.k):
            continue
        start = time.monotonic()
        try:
            detail = fn(args)
            passed += 1
            print(f"PASS {name} ({time.monotonic() - start:.1f} s): {detail}", flush=True)
        except Failure as e:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - start:.1f} s): {e}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
