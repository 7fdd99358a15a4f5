#!/usr/bin/python3
"""Side-by-side benchmarks: magpied against Postfix (and smtp-sink, the protocol-only limit) on this machine, in
one run, alternating rounds, reporting medians, spreads and ratios to bench/RESULTS.md (issue 17).

Usage: bench/run.py [--scenario all|ingest,relay,imap,jmap,memory,startup,postgres] [--rounds 3] [--messages 2000] [--quick]
Loopback only; every server runs from a throw-away directory and is stopped by PID; every loop is bounded in
count and time. Needs a release build (make release) and the Debian packages postfix (smtp-source, smtp-sink).
"""
import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import make_certificate  # noqa: E402
from peers import Dovecot, Postfix, instance_dir  # noqa: E402

RELEASE = Path(os.environ.get("MAGPIE_RELEASE_DIR", ROOT / "build-release"))
MAGPIED = RELEASE / "src" / "server" / "magpied"
MAGPIE = RELEASE / "src" / "cli" / "magpie"
DOMAIN = "bench.test"
USER = f"u@{DOMAIN}"
DEADLINE = 600  # seconds any one measurement may take


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def fsyncs_per_second(directory: Path, seconds=2.0):
    """One writer appending 4 KiB and fsyncing, as the disk under the data directories sees it."""
    path = directory / "fsync-probe"
    count, block = 0, b"x" * 4096
    with open(path, "wb") as f:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            f.write(block)
            f.flush()
            os.fsync(f.fileno())
            count += 1
    path.unlink()
    return count / seconds


class Magpied:
    def __init__(self, root: Path, port: int, imap_port: int = 0, extra: str = "", host: str = "127.0.0.1"):
        """`extra` is appended to the configuration (TOML sections of a scenario's own); `host`: the loopback
        address its SMTP and IMAP listeners bind."""
        self.root, self.port, self.imap_port, self.host = root, port, imap_port, host
        self.data = root / "data"
        self.config = root / "magpie.toml"
        self.config.write_text(
            f'[server]\nhostname = "mx.{DOMAIN}"\ndata_dir = "{self.data}"\nlog_level = "warn"\n'
            # Postfix here checks no SPF, DKIM or DMARC, and loopback has no DNS to ask: each evaluation would
            # wait out its DNS timeouts (7 msgs/s at 10 sessions).
            '[mailauth]\nspf = false\ndkim = false\ndmarc = false\n'
            f'[smtp]\nlisten = ["{host}:{port}"]\nmax_connections_per_ip = 200\nmax_connections = 5000\n'
            f'[imap]\nlisten = ["{host}:{imap_port}"]\nallow_plaintext_login = true\n'
            f'max_connections_per_ip = 2000\nmax_connections = 5000\n' + extra)
        self.proc = None

    def magpie(self, *args, input=None):
        return subprocess.run([str(MAGPIE), "-c", str(self.config), *args], input=input, capture_output=True,
                              check=True, timeout=120)

    def setup(self):
        self.magpie("domain", "add", DOMAIN)
        self.magpie("user", "add", USER, input=b"bench password\n")

    def start_process(self):
        self.log = open(self.root / "magpied.log", "ab")
        self.proc = subprocess.Popen([str(MAGPIED), "-c", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self.proc

    def start(self):
        self.start_process()
        wait_for_port(self.host, self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        if self.proc:
            self.log.close()

    def stored(self):
        """Messages in the user's INBOX, read from the store itself (SQLite, read-only, beside the running
        server), as Postfix's are counted by listing its Maildir. It used to start `magpie export --list` for
        every look: a process opening the store and listing the whole mailbox, 20 times a second, on the cores
        the servers under test share, and one more such run after the last message was in."""
        import sqlite3
        from contextlib import closing
        with closing(sqlite3.connect(f"file:{self.data / 'magpie.db'}?mode=ro", uri=True, timeout=30)) as db:
            row = db.execute("SELECT m.message_count FROM mailboxes m JOIN accounts a ON a.id = m.account_id "
                             "WHERE a.address = ? AND m.name = 'INBOX'", (USER,)).fetchone()
        return row[0] if row else 0


def wait_for_port(host, port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def smtp_source(host, port, sessions, messages, size):
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-f", "sender@remote.test",
           "-t", USER, "-M", "client.remote.test", f"{host}:{port}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=DEADLINE)


def measure(send, count_stored, target):
    """Messages per second from the first byte sent until `target` messages are stored."""
    start = time.monotonic()
    send()
    deadline = start + DEADLINE
    while count_stored() < target:
        if time.monotonic() > deadline:
            raise RuntimeError("messages did not all arrive in time")
        time.sleep(0.05)
    return target / (time.monotonic() - start)


def spread(values):
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def scenario_ingest(args, report):
    """1. SMTP ingest to mailbox: smtp-source, N messages of each size at several session counts; messages per
    second until all are stored (counted in the store or the Maildir, not from replies)."""
    root = instance_dir("magpie-bench-")
    port_magpie, port_postfix, port_sink = free_port(), free_port("127.0.0.4"), free_port("127.0.0.5")
    (root / "magpied").mkdir()
    magpied = Magpied(root / "magpied", port_magpie)
    # Equal work: the bench's Postfix signs nothing, so magpied's domain has no DKIM key either (with one, each
    # submitted message would be signed with RSA-2048 and Ed25519, about a third of a submission's CPU).
    magpied.magpie("domain", "add", "--no-dkim", DOMAIN)
    magpied.magpie("user", "add", USER, input=b"bench password\n")
    postfix = Postfix(root / "postfix", host="127.0.0.4", port=port_postfix, hostname=f"mx.{DOMAIN}",
                      domains=[DOMAIN], users=[USER],
                      extra=["smtpd_client_connection_count_limit = 0", "default_process_limit = 200",
                             "virtual_destination_concurrency_limit = 20"])
    sink = None
    rows = []
    try:
        magpied.start()
        postfix.start()
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.5:{port_sink}", "1000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.5", port_sink)
        sink_total = [0]
        for size in args.sizes:
            for sessions in args.sessions:
                results = {"magpied": [], "postfix": [], "smtp-sink": []}
                n = args.messages
                for round_ in range(args.rounds):
                    order = ["magpied", "postfix", "smtp-sink"]
                    if round_ % 2:
                        order.reverse()
                    for name in order:
                        if name == "magpied":
                            base = magpied.stored()
                            rate = measure(lambda: smtp_source("127.0.0.1", port_magpie, sessions, n, size),
                                           lambda: magpied.stored() - base, n)
                        elif name == "postfix":
                            base = len(postfix.messages(USER))
                            rate = measure(lambda: smtp_source("127.0.0.4", port_postfix, sessions, n, size),
                                           lambda: len(postfix.messages(USER)) - base, n)
                        else:
                            start = time.monotonic()
                            smtp_source("127.0.0.5", port_sink, sessions, n, size)
                            rate = n / (time.monotonic() - start)
                            sink_total[0] += n
                        results[name].append(rate)
                        print(f"ingest size={size} sessions={sessions} round={round_} {name}: {rate:.0f} msgs/s",
                              flush=True)
                m, p, s = (statistics.median(results[k]) for k in ("magpied", "postfix", "smtp-sink"))
                rows.append(f"| {size} | {sessions} | {spread(results['magpied'])} | {spread(results['postfix'])} | "
                            f"{spread(results['smtp-sink'])} | {m / p:.2f}x | {m / s:.2f} |")
    finally:
        if sink:
            sink.terminate()
            sink.wait(timeout=10)
        postfix.stop()
        magpied.stop()
        shutil.rmtree(root, ignore_errors=True)
    report.append("## 1. SMTP ingest to mailbox\n")
    report.append(f"`smtp-source -s SESSIONS -m {args.messages} -l SIZE`, messages per second from the first "
                  "connection until all are in the mailbox (magpied: counted in its store; Postfix: smtpd, cleanup, "
                  "qmgr, virtual into Maildir, counted in the Maildir; smtp-sink: until smtp-source ends). "
                  f"Median (min–max) of {args.rounds} alternating rounds.\n")
    report.append("| size | sessions | magpied | Postfix | smtp-sink | magpied / Postfix | magpied / smtp-sink |")
    report.append("|---|---|---|---|---|---|---|")
    report.extend(rows)
    report.append("")


def pss_kib(pids):
    """Proportional set size of these processes together, KiB (shared pages counted once in total)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def process_tree(root_pid):
    pids, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        todo.extend(int(p) for p in out)
    return pids


def open_idle(host, port, count, greeting=b"220", imap_login=None, tls=False):
    """`count` connections that have read their greeting (and, for IMAP, logged in and selected INBOX), each
    from its own loopback source address so that per-address limits do not apply; `tls`: implicit TLS."""
    import ssl
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sockets = []
    for i in range(count):
        source = f"127.1.{i // 250}.{i % 250 + 1}"
        s = socket.create_connection((host, port), timeout=30, source_address=(source, 0))
        if tls:
            s = context.wrap_socket(s)
        data = b""
        while not data.endswith(b"\r\n"):
            data += s.recv(4096)
        assert data.startswith(greeting), data
        if imap_login:
            user, password = imap_login
            s.sendall(f'a LOGIN "{user}" "{password}"\r\nb SELECT INBOX\r\n'.encode())
            data = b""
            while b"\r\nb OK" not in data and not data.startswith(b"b OK"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed during login")
                data += chunk
                if b"\r\na NO" in data or b"\r\nb NO" in data or data.startswith(b"a NO"):
                    raise RuntimeError(f"login refused: {data[-200:]!r}")
        sockets.append(s)
    return sockets


def open_event_sources(host, port, count, user=USER, password="bench password"):
    """`count` idle JMAP EventSource connections (RFC 8620 7.3, no ping), each from its own loopback address."""
    import base64
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = (f"GET /jmap/eventsource?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Basic {credentials}\r\nAccept: text/event-stream\r\n\r\n").encode()
    sockets = []
    for i in range(count):
        source = f"127.1.{i // 250}.{i % 250 + 1}"
        s = socket.create_connection((host, port), timeout=30, source_address=(source, 0))
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("EventSource connection closed")
            data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"EventSource refused: {data[:200]!r}")
        sockets.append(s)
    return sockets


def per_connection(pids_of, open_connections, count):
    import gc
    gc.collect()
    time.sleep(1)
    before = pss_kib(pids_of())
    sockets = open_connections(count)
    time.sleep(2)
    after = pss_kib(pids_of())
    for s in sockets:
        s.close()
    return (after - before) / count


def scenario_memory(args, report):
    """5. Idle connections: the growth of the server's PSS per idle connection (SMTP after the greeting; IMAP
    logged in with INBOX selected), magpied against Postfix (SMTP) and Dovecot (IMAP)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    count = args.idle
    root = instance_dir("magpie-bench-")
    (root / "magpied").mkdir()
    cert, key = make_certificate(root, f"mx.{DOMAIN}")
    imaps_port, http_port = free_port(), free_port()
    magpied = Magpied(root / "magpied", free_port(), free_port(), extra=(
        f'listen_tls = ["127.0.0.1:{imaps_port}"]\n'
        f'[tls]\ncertificate = "{cert}"\nprivate_key = "{key}"\n'
        f'[http]\nlisten = ["127.0.0.1:{http_port}"]\nallow_plaintext_login = true\n'
        f'max_connections = {count + 100}\nmax_connections_per_ip = 10\n'))
    # Equal work: the bench's Postfix signs nothing, so magpied's domain has no DKIM key either (with one, each
    # submitted message would be signed with RSA-2048 and Ed25519, about a third of a submission's CPU).
    magpied.magpie("domain", "add", "--no-dkim", DOMAIN)
    magpied.magpie("user", "add", USER, input=b"bench password\n")
    postfix = Postfix(root / "postfix", host="127.0.0.4", port=free_port("127.0.0.4"), hostname=f"mx.{DOMAIN}",
                      domains=[DOMAIN], users=[USER],
                      extra=["smtpd_client_connection_count_limit = 0", f"default_process_limit = {count + 100}"])
    dovecot = Dovecot({USER: "bench password"}, host="127.0.0.6", tls=(cert, key),
                      extra=f"default_process_limit = {count + 100}\ndefault_client_limit = {2 * count + 100}\n"
                            "service imap-login {\n  service_count = 0\n}\n")
    rows = []
    try:
        magpied.start()
        postfix.start()
        dovecot.start()
        # Dovecot creates the Maildir on first login; do it once so every figure measures idle sessions only.
        open_idle("127.0.0.6", dovecot.port, 1, b"* OK", (USER, "bench password"))[0].close()

        def magpied_figure(open_connections):
            """KiB per idle connection of one kind, magpied restarted first: memory the previous kind of
            connection left in its heap would otherwise serve the next kind for free (the first figure paid for
            the heap's growth, the later ones not). One connection of the kind is opened and closed before the
            figure, so one-time costs (the first login, caches, per-thread buffers) stay out of it."""
            magpied.stop()
            magpied.start()
            for port in (magpied.imap_port, imaps_port, http_port):
                wait_for_port("127.0.0.1", port)
            for s in open_connections(1):
                s.close()
            return per_connection(lambda: [magpied.proc.pid], open_connections, count)

        smtp_m = magpied_figure(lambda n: open_idle("127.0.0.1", magpied.port, n))
        smtp_p = per_connection(lambda: process_tree(int((postfix.spool / "pid" / "master.pid").read_text())),
                                lambda n: open_idle("127.0.0.4", postfix.port, n), count)
        imap_m = magpied_figure(lambda n: open_idle("127.0.0.1", magpied.imap_port, n, b"* OK",
                                                    (USER, "bench password")))
        imap_d = per_connection(lambda: process_tree(dovecot.proc.pid),
                                lambda n: open_idle("127.0.0.6", dovecot.port, n, b"* OK",
                                                    (USER, "bench password")), count)
        imaps_m = magpied_figure(lambda n: open_idle("127.0.0.1", imaps_port, n, b"* OK",
                                                     (USER, "bench password"), tls=True))
        imaps_d = per_connection(lambda: process_tree(dovecot.proc.pid),
                                 lambda n: open_idle("127.0.0.6", dovecot.tls_port, n, b"* OK",
                                                     (USER, "bench password"), tls=True), count)
        events_m = magpied_figure(lambda n: open_event_sources("127.0.0.1", http_port, n))
        rows.append(f"| SMTP, after the greeting | {smtp_m:.0f} | Postfix {smtp_p:.0f} | {smtp_p / smtp_m:.1f}x less |")
        rows.append(f"| IMAP, logged in, INBOX selected, no TLS | {imap_m:.0f} | Dovecot {imap_d:.0f} | "
                    f"{imap_d / imap_m:.1f}x less |")
        rows.append(f"| IMAP as above, implicit TLS | {imaps_m:.0f} | Dovecot {imaps_d:.0f} | "
                    f"{imaps_d / imaps_m:.1f}x less |")
        rows.append(f"| JMAP EventSource (RFC 8620 7.3), no ping | {events_m:.0f} | none here | |")
        print("\n".join(rows), flush=True)
    finally:
        dovecot.stop()
        postfix.stop()
        magpied.stop()
        shutil.rmtree(root, ignore_errors=True)
    report.append("## 5. Memory per idle connection\n")
    report.append(f"{count} idle connections, each from its own loopback address; the growth of the server's "
                  "proportional set size (all its processes) divided by the count, KiB per connection. magpied is "
                  "restarted before each of its figures and warmed with one connection of the kind, so that no "
                  "figure reuses heap another kind of connection grew.\n")
    report.append("| connection | magpied KiB | peer KiB | magpied uses |")
    report.append("|---|---|---|---|")
    report.extend(rows)
    report.append("")


class Sink:
    """Postfix's smtp-sink on host:port, counting sessions and messages (-c): the remote end of the relay."""

    def __init__(self, root: Path, host: str):
        self.host, self.port = host, free_port(host)
        self.out = root / f"sink-{host}.out"
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"{host}:{self.port}", "256"],
                                     stdout=open(self.out, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for_port(host, self.port)

    def counters(self):
        """(sessions ended, messages received) so far."""
        text = self.out.read_bytes().decode(errors="replace").replace("\n", "\r").split("\r")
        for line in reversed(text):
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "sess" in fields and "mesg" in fields:
                return int(fields["sess"]), int(fields["mesg"])
        return 0, 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def submit(host, port, count, first, sessions, login=None):
    """`count` 4 KiB messages to remote.test recipients over `sessions` SMTP connections (AUTH PLAIN when given).
    Returns the monotonic times at which the sending began and ended: the messages are made and every session
    has connected and logged in before the first, so the figure is the servers' relaying, not the client's Python
    nor magpied's one argon2id verification per session (the same password, checked by all sessions at once)."""
    import smtplib
    import threading

    errors = []
    bodies = {}
    for i in range(first, first + count):
        body = bench_message(i).replace(b"To: " + USER.encode(), f"To: rcpt{i}@remote.test".encode())
        bodies[i] = re.sub(rb"^From: .*$", f"From: Bench <{USER}>\r".encode(), body, count=1, flags=re.M)
    ready = threading.Barrier(sessions + 1, timeout=120)

    def work(w):
        client = None
        try:
            client = smtplib.SMTP(host, port, timeout=60)
            client.ehlo("client.bench.test")
            if login:
                client.login(*login)
        except Exception as e:  # reported below: a failed round is an error, never a figure
            errors.append(repr(e))
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        if client is None:
            return
        try:
            for i in range(first + w, first + count, sessions):
                client.sendmail(USER, [f"rcpt{i}@remote.test"], bodies[i])
            client.quit()
        except Exception as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(w,)) for w in range(sessions)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    end = time.monotonic()
    if errors:
        raise RuntimeError(f"submission failed: {errors[:3]}")
    return start, end


def scenario_relay(args, report):
    """2. Relay: messages submitted for one remote domain, delivered to an smtp-sink on another loopback address;
    messages per second from the first submission until the sink has them all, and the TCP connections the
    sending server opened to the sink, magpied (submission + queue) against Postfix (smtpd + smtp client)."""
    root = instance_dir("magpie-bench-")
    (root / "magpied").mkdir()
    sink_m, sink_p = Sink(root, "127.0.0.5"), Sink(root, "127.0.0.8")
    sub_port = free_port()
    magpied = Magpied(root / "magpied", free_port(), free_port(), extra=(
        f'[submission]\nlisten = ["127.0.0.1:{sub_port}"]\nallow_plaintext_auth = true\nmax_connections_per_ip = 200\n'
        f'[[queue.route]]\ndomain = "remote.test"\nhost = "127.0.0.5"\nport = {sink_m.port}\n'))
    # Equal work: the bench's Postfix signs nothing, so magpied's domain has no DKIM key either (with one, each
    # submitted message would be signed with RSA-2048 and Ed25519, about a third of a submission's CPU).
    magpied.magpie("domain", "add", "--no-dkim", DOMAIN)
    magpied.magpie("user", "add", USER, input=b"bench password\n")
    postfix = Postfix(root / "postfix", host="127.0.0.4", port=free_port("127.0.0.4"), hostname=f"mx.{DOMAIN}",
                      domains=[DOMAIN], users=[USER], transport=[f"remote.test smtp:[127.0.0.8]:{sink_p.port}"],
                      extra=["smtpd_client_connection_count_limit = 0", "default_process_limit = 200"])
    results = {"magpied": [], "postfix": []}
    connections = {"magpied": [], "postfix": []}
    first = 0
    try:
        magpied.start()
        postfix.start()
        for round_ in range(args.rounds):
            order = ["magpied", "postfix"] if round_ % 2 == 0 else ["postfix", "magpied"]
            for name in order:
                sink = sink_m if name == "magpied" else sink_p
                sess0, mesg0 = sink.counters()
                if name == "magpied":
                    start, submitted = submit("127.0.0.1", sub_port, args.relay_messages, first, 10,
                                              (USER, "bench password"))
                else:
                    start, submitted = submit("127.0.0.4", postfix.port, args.relay_messages, first, 10)
                first += args.relay_messages
                while sink.counters()[1] - mesg0 < args.relay_messages:
                    if time.monotonic() - start > DEADLINE:
                        raise RuntimeError(f"{name}: relayed mail did not all arrive in time")
                    time.sleep(0.02)
                rate = args.relay_messages / (time.monotonic() - start)
                # Sessions count when they end: wait out both servers' connection caches (magpied idle_keep 5 s,
                # Postfix smtp_connection_cache_time_limit 2 s).
                time.sleep(7)
                used = sink.counters()[0] - sess0
                results[name].append(rate)
                connections[name].append(used)
                print(f"relay round={round_} {name}: {rate:.0f} msgs/s over {used} connections (all submitted after "
                      f"{submitted - start:.2f} s, load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        postfix.stop()
        magpied.stop()
        sink_m.stop()
        sink_p.stop()
        shutil.rmtree(root, ignore_errors=True)
    m, p = results["magpied"], results["postfix"]
    report.append("## 2. Relay\n")
    report.append(f"{args.relay_messages} messages of 4 KiB per round, submitted over 10 SMTP sessions (magpied: "
                  "submission with AUTH PLAIN; Postfix: smtpd, relay allowed for mynetworks) for one remote domain "
                  "routed to an `smtp-sink` on its own loopback address. Messages per second from the first "
                  "submission (the 10 sessions connected and logged in, the messages made, before the clock "
                  "starts) until the sink has them all, median (min–max) of "
                  f"{args.rounds} alternating rounds; connections the sink saw per round. Both servers at their "
                  "defaults otherwise (magpied `[queue] max_connections_per_host = 2` and "
                  "`max_messages_per_connection = 1000`; Postfix `default_destination_concurrency_limit = 20`, "
                  "connections reused without a count limit). Equal work: the bench's Postfix signs nothing, so "
                  "magpied's domain has no DKIM key (`magpie domain add --no-dkim`; with one, every submitted "
                  "message is signed with RSA-2048 and Ed25519, about a third of a submission's CPU). What still "
                  "differs: magpied's submission asks for AUTH (a password verified moments ago is remembered) "
                  "where Postfix relays for mynetworks, and magpied records every delivery attempt with its "
                  "transcript in its store, group-committed and fsynced, where Postfix's qmgr deletes the queue "
                  "file.\n")
    report.append("| server | msgs/s | connections per round | magpied / Postfix |")
    report.append("|---|---|---|---|")
    report.append(f"| magpied | {spread(m)} | {statistics.median(connections['magpied']):.0f} | "
                  f"{statistics.median(m) / statistics.median(p):.2f}x |")
    report.append(f"| Postfix | {spread(p)} | {statistics.median(connections['postfix']):.0f} | |")
    report.append("")


def greeting_after_start(start_process, host, port, prefix, timeout=120):
    """Seconds from starting a server until `host:port` accepts a connection and sends its greeting."""
    start = time.monotonic()
    process = start_process()
    while time.monotonic() - start < timeout:
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                if s.recv(64).startswith(prefix):
                    return time.monotonic() - start, process
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"nothing greeted on {host}:{port}")


def bytes_on_disk(path: Path):
    """Allocated bytes (du), not apparent sizes: what the files really take."""
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def fill_maildir(dovecot, first, end):
    """Stores messages first..end-1 (bench_message) in Dovecot's INBOX as Maildir files written directly, then
    has Dovecot index them by SELECTing INBOX over IMAP. Dovecot's APPEND fsyncs each message alone: it stored
    about 16 a second here (load 20), so 100,000 would take well over an hour. For a large count the files are
    written as its own delivery leaves them (one file per message in cur/, named with S=size) and synced once."""
    import imaplib
    import pwd
    owner = pwd.getpwnam("dovecot")
    home = dovecot.dir / "mail" / USER
    for sub in ("cur", "new", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
        os.chown(home / sub, owner.pw_uid, owner.pw_gid)
    os.chown(home, owner.pw_uid, owner.pw_gid)
    now = int(time.time())
    for i in range(first, end):
        data = bench_message(i)
        path = home / "cur" / f"{now}.M{i}P{os.getpid()}.bench,S={len(data)}:2,"
        path.write_bytes(data)
        os.chown(path, owner.pw_uid, owner.pw_gid)
    os.sync()
    client = imaplib.IMAP4(dovecot.host, dovecot.port)
    client.login(USER, "bench password")
    typ, data = client.select("INBOX")
    assert typ == "OK" and int(data[0]) >= end - 1, data
    client.logout()


def scenario_startup(args, report):
    """6. Start-up and size: seconds from start until the IMAP greeting with 1 and with N messages stored, and
    allocated bytes on disk per stored 4 KiB message, magpied against Dovecot (Maildir + its indexes)."""
    root = instance_dir("magpie-bench-")
    (root / "magpied").mkdir()
    magpied = Magpied(root / "magpied", free_port(), free_port())
    magpied.setup()
    dovecot = Dovecot({USER: "bench password"}, host="127.0.0.6")
    rows, size_rows, sizes = [], [], {}
    stored = 0
    try:
        for count in (1, args.startup_messages):
            magpied.start()
            dovecot.start()
            # More APPENDing clients for a large count (Dovecot allows 10 per user and address by default): Dovecot
            # fsyncs each message on its own, magpied's share group commits; both get the same clients and bytes.
            workers = 4 if count - stored <= 1000 else 8
            populate_imap("127.0.0.1", magpied.imap_port, count - stored, workers=workers)
            if count - stored <= 1000:
                populate_imap("127.0.0.6", dovecot.port, count - stored, workers=workers)
            else:
                fill_maildir(dovecot, stored, count)
            stored = count
            magpied.stop()
            dovecot.proc.send_signal(signal.SIGTERM)
            dovecot.proc.wait(timeout=20)
            # Sizes with both servers stopped (SQLite's WAL checkpointed, Dovecot's indexes written).
            sizes[count] = {"magpied": bytes_on_disk(magpied.data), "dovecot": bytes_on_disk(dovecot.dir / "mail")}
            times = {"magpied": [], "dovecot": []}
            for _ in range(args.rounds):
                t, _proc = greeting_after_start(
                    lambda: magpied.start_process(), "127.0.0.1", magpied.imap_port, b"* OK")
                times["magpied"].append(t)
                magpied.stop()
                t, _proc = greeting_after_start(lambda: dovecot.start_process(), "127.0.0.6", dovecot.port, b"* OK")
                times["dovecot"].append(t)
                dovecot.proc.send_signal(signal.SIGTERM)
                dovecot.proc.wait(timeout=20)
            m = [1000 * t for t in times["magpied"]]
            d = [1000 * t for t in times["dovecot"]]
            rows.append(f"| {count} | {spread(m)} | {spread(d)} | {statistics.median(d) / statistics.median(m):.1f}x "
                        "faster |")
            print(rows[-1], flush=True)
            if count > 1:
                for name, label in (("magpied", "magpied (SQLite + blob files)"),
                                    ("dovecot", "Dovecot (Maildir + indexes)")):
                    per = (sizes[count][name] - sizes[1][name]) / (count - 1)
                    size_rows.append(f"| {label} | {per:.0f} | {sizes[1][name]} |")
    finally:
        if dovecot.proc and dovecot.proc.poll() is None:
            dovecot.proc.send_signal(signal.SIGTERM)
            dovecot.proc.wait(timeout=20)
        magpied.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    report.append("## 6. Start-up and size\n")
    report.append("Milliseconds from starting the server until its IMAP port sends a greeting (a client polling "
                  f"every 2 ms), median (min–max) of {args.rounds} starts, with 1 and with {args.startup_messages} "
                  "messages of 4 KiB in INBOX (the same bytes to both: APPENDed over IMAP, except that above 1,000 messages Dovecot's are written as Maildir files and indexed by one SELECT, since its APPEND fsyncs each message alone: about 16 a second here under load).\n")
    report.append("| messages | magpied ms | Dovecot ms | magpied |")
    report.append("|---|---|---|---|")
    report.extend(rows)
    report.append("")
    report.append("Allocated bytes on disk (du, servers stopped) per stored message of about 4 KiB: the growth of the "
                  f"whole data directory (magpied) and mail directory (Dovecot) from 1 to {args.startup_messages} "
                  "messages, and what each took with one message (fixed overhead).\n")
    report.append("| store | bytes per message | bytes with 1 message |")
    report.append("|---|---|---|")
    report.extend(size_rows)
    report.append("")


IMAP_LOAD = RELEASE / "bench" / "imap_load"


def bench_message(i):
    body = "".join(f"Line {j} of message {i}: the quick brown fox jumps over the lazy dog.\r\n" for j in range(40))
    return (f"From: Sender {i % 17} <sender{i % 17}@remote.test>\r\nTo: {USER}\r\nSubject: message {i}\r\n"
            f"Date: Mon, 23 Nov 2026 10:{i % 60:02d}:00 +0000\r\nMessage-ID: <bench{i}@remote.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


def populate_imap(host, port, count, password="bench password", workers=4):
    """APPENDs `count` messages to INBOX over IMAP with a few parallel clients (the same bytes to every server)."""
    import imaplib
    import threading

    def work(w):
        client = imaplib.IMAP4(host, port)
        client.login(USER, password)
        for i in range(w, count, workers):
            typ, _ = client.append("INBOX", None, None, bench_message(i))
            assert typ == "OK"
        client.logout()
    failures = []

    def guarded(w):
        try:
            work(w)
        except Exception as error:  # a client that failed leaves its share unstored: the scenario must not go on
            failures.append(error)
    threads = [threading.Thread(target=guarded, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"populating {host}:{port} failed: {failures[0]!r}")


def imap_load(host, port, clients, seconds, mix, password="bench password"):
    import json
    out = subprocess.run([str(IMAP_LOAD), "--host", host, "--port", str(port), "--user", USER, "--password", password,
                          "--clients", str(clients), "--seconds", str(seconds), "--mix", mix],
                         capture_output=True, text=True, timeout=seconds + 300)
    if out.returncode != 0:
        raise RuntimeError(f"imap_load failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def scenario_imap(args, report):
    """3. IMAP: imap_load's realistic mix at several client counts against Dovecot on the same messages, and a
    login-heavy mix against Dovecot with the same argon2id hash and with Debian's default SHA512-CRYPT."""
    if not IMAP_LOAD.exists():
        sys.exit(f"{IMAP_LOAD} is missing: run `cmake --build {RELEASE} --target imap_load` (make bench does)")
    hashes = {scheme: subprocess.run(["doveadm", "pw", "-s", scheme, "-p", "bench password"], capture_output=True,
                                     text=True, check=True).stdout.strip() for scheme in ("ARGON2ID", "SHA512-CRYPT")}
    root = instance_dir("magpie-bench-")
    (root / "magpied").mkdir()
    magpied = Magpied(root / "magpied", free_port(), free_port())
    magpied.setup()
    dovecot_tuned = ("service imap-login {\n  service_count = 0\n  process_min_avail = 2\n}\n"
                     "service imap {\n  service_count = 0\n  process_limit = 1024\n}\n"
                     "service auth {\n  client_limit = 4096\n}\n"
                     "default_client_limit = 4096\nmaildir_very_dirty_syncs = yes\n")
    peers = {"argon2id": Dovecot({USER: hashes["ARGON2ID"]}, host="127.0.0.6", extra=dovecot_tuned),
             "sha512-crypt": Dovecot({USER: hashes["SHA512-CRYPT"]}, host="127.0.0.7", extra=dovecot_tuned)}
    rows, login_rows, kinds = [], [], []
    try:
        magpied.start()
        for peer in peers.values():
            peer.start()
        populate_imap("127.0.0.1", magpied.imap_port, args.imap_messages)
        populate_imap("127.0.0.6", peers["argon2id"].port, args.imap_messages)
        for clients in args.imap_clients:
            results = {"magpied": [], "dovecot": []}
            for round_ in range(args.rounds):
                order = ["magpied", "dovecot"] if round_ % 2 == 0 else ["dovecot", "magpied"]
                for name in order:
                    host, port = (("127.0.0.1", magpied.imap_port) if name == "magpied"
                                  else ("127.0.0.6", peers["argon2id"].port))
                    r = imap_load(host, port, clients, args.imap_seconds, "realistic")
                    results[name].append(r)
                    print(f"imap clients={clients} round={round_} {name}: {r['ops_per_second']:.0f} ops/s "
                          f"p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms errors {r['errors']}", flush=True)
            m = [r["ops_per_second"] for r in results["magpied"]]
            d = [r["ops_per_second"] for r in results["dovecot"]]
            mp50 = statistics.median(r["p50_ms"] for r in results["magpied"])
            dp50 = statistics.median(r["p50_ms"] for r in results["dovecot"])
            mp99 = statistics.median(r["p99_ms"] for r in results["magpied"])
            dp99 = statistics.median(r["p99_ms"] for r in results["dovecot"])
            merr = sum(r["errors"] + r["failed_clients"] for r in results["magpied"])
            derr = sum(r["errors"] + r["failed_clients"] for r in results["dovecot"])
            rows.append(f"| {clients} | {spread(m)} | {mp50:.1f} | {mp99:.1f} | {merr} | {spread(d)} | {dp50:.1f} | "
                        f"{dp99:.1f} | {derr} | {statistics.median(m) / statistics.median(d):.2f}x |")
            print(rows[-1], flush=True)
            kinds.append((clients, results))
        for scheme, peer, host in (() if args.no_login_mix else
                                   (("argon2id", peers["argon2id"], "127.0.0.6"),
                                    ("sha512-crypt", peers["sha512-crypt"], "127.0.0.7"))):
            m = [imap_load("127.0.0.1", magpied.imap_port, 10, args.imap_seconds, "login")["ops_per_second"]
                 for _ in range(args.rounds)]
            d = [imap_load(host, peer.port, 10, args.imap_seconds, "login")["ops_per_second"]
                 for _ in range(args.rounds)]
            login_rows.append(f"| Dovecot with {scheme} | {spread(m)} | {spread(d)} | "
                              f"{statistics.median(m) / statistics.median(d):.2f}x |")
            print(login_rows[-1], flush=True)
    finally:
        for peer in peers.values():
            peer.stop()
        magpied.stop()
        shutil.rmtree(root, ignore_errors=True)
    report.append("## 3. IMAP\n")
    report.append(f"`imap_load --mix realistic` for {args.imap_seconds} s against a {args.imap_messages}-message INBOX "
                  "(the same messages APPENDed to both): 30% 50-message FETCH windows of FLAGS and ENVELOPE, 25% "
                  "whole bodies (BODY.PEEK[]), 10% SEARCH UNSEEN SUBJECT, 15% STORE of \\Seen, 5% APPEND, 9% NOOP, "
                  "5% IDLE entered and left, 1% FETCH 1:* (FLAGS). Operations per second, median "
                  f"(min–max) of {args.rounds} alternating rounds, p50 and p99 latency over all commands (medians of "
                  "the rounds), errors (NO/BAD answers and failed clients, summed); the window opens once every "
                  "client has logged in and selected INBOX. Dovecot with its login and imap processes reused "
                  "(service_count = 0) and maildir_very_dirty_syncs.\n")
    report.append("| clients | magpied ops/s | p50 ms | p99 ms | errors | Dovecot ops/s | p50 ms | p99 ms | errors | "
                  "magpied / Dovecot |")
    report.append("|---|---|---|---|---|---|---|---|---|---|")
    report.extend(rows)
    report.append("")
    report.append("Per command, p50 / p99 ms (medians of the rounds):\n")
    report.append("| clients | command | magpied | Dovecot |")
    report.append("|---|---|---|---|")
    for clients, results in kinds:
        names = sorted({k for r in results["magpied"] + results["dovecot"] for k in r["kinds"]})
        for kind in names:
            cells = []
            for name in ("magpied", "dovecot"):
                got = [r["kinds"][kind] for r in results[name] if kind in r["kinds"]]
                cells.append(f"{statistics.median(g['p50_ms'] for g in got):.1f} / "
                             f"{statistics.median(g['p99_ms'] for g in got):.1f}" if got else "")
            report.append(f"| {clients} | {kind} | {cells[0]} | {cells[1]} |")
    report.append("")
    if args.no_login_mix:
        return
    report.append("Login-heavy mix (`imap_load --mix login`, 10 clients: connect, LOGIN, SELECT, FETCH 1:10 (FLAGS), "
                  "LOGOUT, again and again); cycles per second. magpied stores argon2id and remembers a password it "
                  "verified moments ago ([auth] verified_cache_seconds); a wrong password always pays in full.\n")
    report.append("| peer | magpied cycles/s | peer cycles/s | magpied / peer |")
    report.append("|---|---|---|---|")
    report.extend(login_rows)
    report.append("")



JMAP_LOAD = RELEASE / "bench" / "jmap_load"
CYRUS_BIN = Path("/usr/lib/cyrus/bin")


class Cyrus:
    """A throw-away Cyrus (Debian's cyrus-common and cyrus-caldav, whose httpd serves JMAP, RFC 8620/8621) under its
    own directory on `host`: HTTP with JMAP, and LMTP on a Unix socket to load the same messages (Debian's
    cyrus-imapd, its IMAP server, conflicts with dovecot-imapd, so it is not installed); users in a sasldb of its
    own, its master stopped by PID. Cyrus's defaults fsync mail and its databases before a reply, as magpied does."""

    def __init__(self, root: Path, users: dict, host="127.0.0.9"):
        import pwd
        if not (CYRUS_BIN / "httpd").exists() or not (CYRUS_BIN / "lmtpd").exists():
            raise RuntimeError("Cyrus with JMAP is missing: scripts/install-deps.sh installs cyrus-common and "
                               "cyrus-caldav")
        self.dir, self.host = root, host
        self.http_port = free_port(host)
        self.lmtp_socket = root / "run" / "socket" / "lmtp"
        self.proc = None
        for sub in ("config", "spool", "run/proc", "run/lock", "run/socket"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "imapd.conf").write_text(
            f"configdirectory: {root}/config\ndefaultpartition: default\npartition-default: {root}/spool\n"
            f"proc_path: {root}/run/proc\nmboxname_lockpath: {root}/run/lock\nlmtpsocket: {self.lmtp_socket}\n"
            f"idlesocket: {root}/run/socket/idle\nnotifysocket: {root}/run/socket/notify\n"
            "admins: cyrus\nallowplaintext: yes\nsasl_pwcheck_method: auxprop\nsasl_auxprop_plugin: sasldb\n"
            f"sasl_sasldb_path: {root}/sasldb2\nsasl_mech_list: PLAIN LOGIN\nvirtdomains: userid\n"
            "unixhierarchysep: yes\naltnamespace: yes\nautocreate_quota: 0\nautocreate_post: yes\n"
            "httpmodules: jmap\nconversations: yes\nconversations_db: twoskip\njmap_pushpoll: 1\n"
            "sendmail: /bin/true\nsyslog_prefix: cyrus-bench\n")
        conf = root / "imapd.conf"
        (root / "cyrus.conf").write_text(
            f'START {{\n  recover cmd="ctl_cyrusdb -r -C {conf}"\n}}\nSERVICES {{\n'
            f'  lmtpunix cmd="lmtpd -C {conf}" listen="{self.lmtp_socket}" prefork=1\n'
            f'  http cmd="httpd -C {conf}" listen="{host}:{self.http_port}" prefork=2\n}}\nEVENTS {{\n}}\n'
            'DAEMON {\n}\n')
        for address, password in users.items():
            local, domain = address.split("@")
            subprocess.run(["saslpasswd2", "-p", "-c", "-f", str(root / "sasldb2"), "-u", domain, local],
                           input=password.encode(), check=True, timeout=30)
        user = pwd.getpwnam("cyrus")
        for path in [root, *root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)

    def start(self):
        self.proc = subprocess.Popen([str(CYRUS_BIN / "master"), "-C", str(self.dir / "imapd.conf"), "-M",
                                      str(self.dir / "cyrus.conf"), "-p", str(self.dir / "master.pid"), "-D"],
                                     stdout=open(self.dir / "master.log", "wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_for_port(self.host, self.http_port)
        deadline = time.time() + 30
        while not self.lmtp_socket.exists():
            if time.time() > deadline:
                raise RuntimeError("Cyrus's LMTP socket did not appear")
            time.sleep(0.05)

    def populate(self, count):
        """The same messages as populate_imap, delivered over LMTP (RFC 2033) into INBOX (created on delivery)."""
        import smtplib
        client = smtplib.LMTP(str(self.lmtp_socket))
        for i in range(count):
            refused = client.sendmail("sender@remote.test", [USER], bench_message(i))
            assert not refused, refused
        client.quit()

    def pids(self):
        return process_tree(self.proc.pid) if self.proc else []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def jmap_load(host, port, clients, seconds, password="bench password"):
    import json
    out = subprocess.run([str(JMAP_LOAD), "--host", host, "--port", str(port), "--user", USER, "--password", password,
                          "--clients", str(clients), "--seconds", str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 300)
    if out.returncode != 0:
        raise RuntimeError(f"jmap_load failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    if out.stderr.strip():
        print(out.stderr.strip()[-500:], flush=True)
    return result


def scenario_jmap(args, report):
    """4. JMAP: jmap_load's mix (a page of Email/query + Email/get, a body, a search, Email/set of keywords,
    Email/changes, Mailbox/get, and an EventSource counting pushes) at several client counts, against Cyrus IMAP's
    JMAP on the same messages: the one JMAP server in Debian (Stalwart is not packaged there, Dovecot has no JMAP)."""
    if not JMAP_LOAD.exists():
        sys.exit(f"{JMAP_LOAD} is missing: run `cmake --build {RELEASE} --target jmap_load` (make bench does)")
    root = instance_dir("magpie-bench-")
    (root / "magpied").mkdir()
    (root / "cyrus").mkdir()
    http_port = free_port()
    magpied = Magpied(root / "magpied", free_port(), free_port(), extra=(
        f'[http]\nlisten = ["127.0.0.1:{http_port}"]\nallow_plaintext_login = true\n'
        # Every client is the same account: the per-account limit (4 by default, RFC 8620 maxConcurrentRequests)
        # would refuse most requests at 10 and 100 clients. Cyrus advertises 5 and does not enforce it.
        'max_connections = 5000\nmax_connections_per_ip = 10\nmax_concurrent_requests = 1000\n'))
    magpied.setup()
    cyrus = Cyrus(root / "cyrus", {USER: "bench password"})
    rows = []
    try:
        magpied.start()
        cyrus.start()
        populate_imap("127.0.0.1", magpied.imap_port, args.imap_messages)
        cyrus.populate(args.imap_messages)
        for clients in args.jmap_clients:
            results = {"magpied": [], "cyrus": []}
            for round_ in range(args.rounds):
                order = ["magpied", "cyrus"] if round_ % 2 == 0 else ["cyrus", "magpied"]
                for name in order:
                    host, port = ("127.0.0.1", http_port) if name == "magpied" else (cyrus.host, cyrus.http_port)
                    r = jmap_load(host, port, clients, args.imap_seconds)
                    results[name].append(r)
                    print(f"jmap clients={clients} round={round_} {name}: {r['ops_per_second']:.0f} req/s "
                          f"p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms errors {r['errors']} "
                          f"pushes {r['push_events']}", flush=True)
            m = [r["ops_per_second"] for r in results["magpied"]]
            c = [r["ops_per_second"] for r in results["cyrus"]]
            mp50 = statistics.median(r["p50_ms"] for r in results["magpied"])
            cp50 = statistics.median(r["p50_ms"] for r in results["cyrus"])
            mp99 = statistics.median(r["p99_ms"] for r in results["magpied"])
            cp99 = statistics.median(r["p99_ms"] for r in results["cyrus"])
            merr = sum(r["errors"] for r in results["magpied"])
            cerr = sum(r["errors"] for r in results["cyrus"])
            mpush = statistics.median(r["push_events"] for r in results["magpied"])
            cpush = statistics.median(r["push_events"] for r in results["cyrus"])
            rows.append(f"| {clients} | {spread(m)} | {mp50:.1f} | {mp99:.1f} | {mpush:.0f} | {merr} | {spread(c)} | "
                        f"{cp50:.1f} | {cp99:.1f} | {cpush:.0f} | {cerr} | "
                        f"{statistics.median(m) / statistics.median(c):.2f}x |")
            print(rows[-1], flush=True)
    finally:
        cyrus.stop()
        magpied.stop()
        shutil.rmtree(root, ignore_errors=True)
    report.append("## 4. JMAP\n")
    report.append(f"`jmap_load` for {args.imap_seconds} s against a {args.imap_messages}-message INBOX (the same "
                  "messages: APPENDed over IMAP to magpied, delivered over LMTP to Cyrus), each client one HTTP/1.1 keep-alive connection with Basic "
                  "authentication: 35% a page (Email/query of 50 by receivedAt at a random position + Email/get of "
                  "its list properties by back-reference), 20% one text body (Email/get, fetchTextBodyValues), 10% "
                  "the unread ones (Email/query, notKeyword $seen: Cyrus answers a subject search with serverFail "
                  "without its Xapian index), 20% Email/set of $seen on or off, 10% Email/changes, 5% Mailbox/get; one more "
                  "connection holds the EventSource (RFC 8620 7.3) and counts the state events pushed to it. "
                  f"Requests per second, median (min–max) of {args.rounds} alternating rounds, p99 in ms; errors are "
                  "requests answered with an HTTP or JMAP error (summed over the rounds).\n")
    report.append("The peer is Cyrus IMAP 3.6 (Debian's cyrus-common + cyrus-caldav, whose httpd serves JMAP), the "
                  "one JMAP server Debian packages: Stalwart, which the issue names, is not a Debian package and "
                  "publishes no JMAP throughput figures for this mix, and Dovecot has no JMAP. Cyrus runs with its "
                  "defaults (prefork httpd processes, conversations on, fsync before replies) except jmap_pushpoll = 1 "
                  "(its fastest push; its EventSource still answered 204 here, so it pushed nothing) and checks "
                  "passwords against its sasldb (stored in clear); magpied stores argon2id and remembers a verified "
                  "password ([auth] verified_cache_seconds). Every client is the same account, so magpied's "
                  "per-account limit on concurrent requests ([http] max_concurrent_requests, 4 by default) is "
                  "raised to 1000 for the run; Cyrus advertises 5 and does not enforce it.\n")
    report.append("| clients | magpied req/s | p50 ms | p99 ms | pushes | errors | Cyrus req/s | p50 ms | p99 ms | pushes | "
                  "errors | magpied / Cyrus |")
    report.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    report.extend(rows)
    report.append("")


PG_CLUSTER = ROOT / "tests" / "postgres-cluster.sh"


class BenchPostgres:
    """A throw-away PostgreSQL for the PostgreSQL-backend scenario: tests/postgres-cluster.sh makes it (initdb into
    a temporary directory as the `postgres` user when run as root, 127.0.0.1 and a free port only, fsync on);
    stopped here by the postmaster's PID (SIGINT: PostgreSQL's fast shutdown), its directory removed."""

    def __init__(self):
        if not any(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
            raise RuntimeError("PostgreSQL is missing: scripts/install-deps.sh installs postgresql")
        self.dir = Path(tempfile.mkdtemp(prefix="magpie-bench-pg-"))
        self.port = free_port()
        self.pid = None
        subprocess.run([str(PG_CLUSTER), "start", str(self.dir), str(self.port)], check=True, timeout=180)
        self.pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def dsn(self, database="magpie"):
        return f"host=127.0.0.1 port={self.port} user=magpie dbname={database}"

    def create_database(self, name):
        self.sql(self.dsn(), f"CREATE DATABASE {name}")
        return self.dsn(name)

    def sql(self, dsn, statement):
        return subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", dsn, "-c", statement], check=True,
                              capture_output=True, text=True, timeout=60).stdout

    def wal_syncs(self):
        """WAL fsyncs the server has made (pg_stat_wal), read after the statistics had a moment to settle."""
        time.sleep(1.5)
        return int(self.sql(self.dsn(), "SELECT wal_sync FROM pg_stat_wal"))

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGINT)
                deadline = time.monotonic() + 60
                while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                if Path(f"/proc/{self.pid}").exists():
                    os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_nodes(root: Path, pg: BenchPostgres, database: str, extra: str = ""):
    """Two magpied nodes on 127.0.0.2 and 127.0.0.3 sharing one new database; the first provisions the
    domain and the user. Not started."""
    dsn = pg.create_database(database)
    nodes = []
    for i, host in enumerate(("127.0.0.2", "127.0.0.3")):
        (root / f"node{i + 1}").mkdir()
        nodes.append(Magpied(root / f"node{i + 1}", free_port(host), free_port(host), host=host, extra=(
            f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\n' + extra)))
    nodes[0].setup()
    return nodes, dsn


def stored_in_postgres(pg, dsn):
    """Messages in the user's INBOX, counted in the shared database."""
    return int(pg.sql(dsn, "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
                           f"JOIN accounts a ON a.id = b.account_id WHERE a.address = '{USER}' AND b.name = 'INBOX'"))


def split(total, parts):
    """`total` cut into `parts` counts that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def smtp_source_nodes(nodes, sessions, messages, size):
    """smtp-source against every node at once, the messages and sessions split between them."""
    import threading
    errors = []

    def one(node, s, m):
        try:
            smtp_source(node.host, node.port, max(s, 1), m, size)
        except Exception as e:  # a failed round is an error, never a figure
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(n, s, m))
               for n, s, m in zip(nodes, split(sessions, len(nodes)), split(messages, len(nodes)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"smtp-source failed: {errors[:2]}")


def imap_load_nodes(nodes, clients, seconds, mix):
    """imap_load against every node at once, the clients split between them: operations per second summed,
    errors summed, p50 and p99 the worse node's."""
    import threading
    results, errors = [], []

    def one(node, c):
        try:
            results.append(imap_load(node.host, node.imap_port, c, seconds, mix))
        except Exception as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(n, c)) for n, c in zip(nodes, split(clients, len(nodes))) if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"imap_load failed: {errors[:2]}")
    return {"ops_per_second": sum(r["ops_per_second"] for r in results),
            "p50_ms": max(r["p50_ms"] for r in results), "p99_ms": max(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] for r in results)}


PG_SERVERS = ["SQLite", "PG 1 node", "PG 2 nodes"]


def postgres_ingest(args, pg, root, rows):
    port_postfix = free_port("127.0.0.4")
    (root / "sqlite").mkdir()
    sqlite = Magpied(root / "sqlite", free_port(), free_port())
    sqlite.setup()
    (root / "ingest").mkdir()
    nodes, dsn = postgres_nodes(root / "ingest", pg, "bench_ingest")
    postfix = Postfix(root / "postfix", host="127.0.0.4", port=port_postfix, hostname=f"mx.{DOMAIN}",
                      domains=[DOMAIN], users=[USER],
                      extra=["smtpd_client_connection_count_limit = 0", "default_process_limit = 200",
                             "virtual_destination_concurrency_limit = 20"])
    try:
        for server in (sqlite, *nodes):
            server.start()
        postfix.start()
        for size in args.sizes:
            for sessions in args.sessions:
                results = {name: [] for name in PG_SERVERS + ["Postfix"]}
                syncs = {"PG 1 node": [], "PG 2 nodes": []}
                n = args.messages
                for round_ in range(args.rounds):
                    order = PG_SERVERS + ["Postfix"]
                    order = order[round_ % len(order):] + order[:round_ % len(order)]
                    for name in order:
                        if name == "SQLite":
                            base = sqlite.stored()
                            rate = measure(lambda: smtp_source("127.0.0.1", sqlite.port, sessions, n, size),
                                           lambda: sqlite.stored() - base, n)
                        elif name == "Postfix":
                            base = len(postfix.messages(USER))
                            rate = measure(lambda: smtp_source("127.0.0.4", port_postfix, sessions, n, size),
                                           lambda: len(postfix.messages(USER)) - base, n)
                        else:
                            used = nodes[:1] if name == "PG 1 node" else nodes
                            base, synced = stored_in_postgres(pg, dsn), pg.wal_syncs()
                            rate = measure(lambda: smtp_source_nodes(used, sessions, n, size),
                                           lambda: stored_in_postgres(pg, dsn) - base, n)
                            syncs[name].append((pg.wal_syncs() - synced) * 100 / n)
                        results[name].append(rate)
                        print(f"postgres ingest size={size} sessions={sessions} round={round_} {name}: "
                              f"{rate:.0f} msgs/s", flush=True)
                med = {k: statistics.median(v) for k, v in results.items()}
                rows.append(f"| {size} | {sessions} | {spread(results['SQLite'])} | {spread(results['PG 1 node'])} | "
                            f"{spread(results['PG 2 nodes'])} | {spread(results['Postfix'])} | "
                            f"{med['PG 1 node'] / med['SQLite']:.2f} | {med['PG 2 nodes'] / med['SQLite']:.2f} | "
                            f"{med['PG 1 node'] / med['Postfix']:.2f}x | {med['PG 2 nodes'] / med['Postfix']:.2f}x | "
                            f"{statistics.median(syncs['PG 1 node']):.0f} / {statistics.median(syncs['PG 2 nodes']):.0f} |")
    finally:
        postfix.stop()
        for server in (sqlite, *nodes):
            server.stop()


def postgres_imap(args, pg, root, rows):
    (root / "imap-sqlite").mkdir()
    sqlite = Magpied(root / "imap-sqlite", free_port(), free_port())
    sqlite.setup()
    (root / "imap").mkdir()
    nodes, _dsn = postgres_nodes(root / "imap", pg, "bench_imap")
    dovecot = Dovecot({USER: "bench password"}, host="127.0.0.6", extra=(
        "service imap-login {\n  service_count = 0\n  process_min_avail = 2\n}\n"
        "service imap {\n  service_count = 0\n  process_limit = 1024\n}\n"
        "service auth {\n  client_limit = 4096\n}\n"
        "default_client_limit = 4096\nmaildir_very_dirty_syncs = yes\n"))
    try:
        for server in (sqlite, *nodes):
            server.start()
        dovecot.start()
        populate_imap("127.0.0.1", sqlite.imap_port, args.imap_messages)
        populate_imap(nodes[0].host, nodes[0].imap_port, args.imap_messages)
        populate_imap("127.0.0.6", dovecot.port, args.imap_messages)
        for clients in args.imap_clients:
            results = {name: [] for name in PG_SERVERS + ["Dovecot"]}
            for round_ in range(args.rounds):
                order = PG_SERVERS + ["Dovecot"]
                order = order[round_ % len(order):] + order[:round_ % len(order)]
                for name in order:
                    if name == "SQLite":
                        r = imap_load("127.0.0.1", sqlite.imap_port, clients, args.imap_seconds, "realistic")
                    elif name == "Dovecot":
                        r = imap_load("127.0.0.6", dovecot.port, clients, args.imap_seconds, "realistic")
                    else:
                        r = imap_load_nodes(nodes[:1] if name == "PG 1 node" else nodes, clients,
                                            args.imap_seconds, "realistic")
                    results[name].append(r)
                    print(f"postgres imap clients={clients} round={round_} {name}: {r['ops_per_second']:.0f} ops/s "
                          f"p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms errors {r['errors']}", flush=True)
            ops = {k: [r["ops_per_second"] for r in v] for k, v in results.items()}
            med = {k: statistics.median(v) for k, v in ops.items()}
            p99 = {k: statistics.median(r["p99_ms"] for r in v) for k, v in results.items()}
            errors = sum(r["errors"] for v in results.values() for r in v)
            rows.append(f"| {clients} | {spread(ops['SQLite'])} / {p99['SQLite']:.1f} | "
                        f"{spread(ops['PG 1 node'])} / {p99['PG 1 node']:.1f} | "
                        f"{spread(ops['PG 2 nodes'])} / {p99['PG 2 nodes']:.1f} | "
                        f"{spread(ops['Dovecot'])} / {p99['Dovecot']:.1f} | "
                        f"{med['PG 1 node'] / med['SQLite']:.2f} | {med['PG 2 nodes'] / med['SQLite']:.2f} | "
                        f"{med['PG 1 node'] / med['Dovecot']:.2f}x | {med['PG 2 nodes'] / med['Dovecot']:.2f}x | "
                        f"{errors} |")
    finally:
        dovecot.stop()
        for server in (sqlite, *nodes):
            server.stop()


def scenario_postgres(args, report):
    """7. The PostgreSQL backend (issue 16): SMTP ingest and the IMAP mix on magpied with the shared store, one
    node and two nodes (127.0.0.2 and 127.0.0.3 on one database, the load split between them), beside magpied on
    its embedded store and beside Postfix and Dovecot, in the same run with alternating rounds."""
    if not IMAP_LOAD.exists():
        sys.exit(f"{IMAP_LOAD} is missing: run `cmake --build {RELEASE} --target imap_load` (make bench does)")
    root = instance_dir("magpie-bench-")
    pg = None
    ingest_rows, imap_rows = [], []
    try:
        pg = BenchPostgres()
        postgres_ingest(args, pg, root, ingest_rows)
        postgres_imap(args, pg, root, imap_rows)
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    report.append("## 7. The PostgreSQL backend, one and two nodes\n")
    report.append("PostgreSQL 15 on the same machine, started by the bench (initdb into a temporary directory, "
                  "127.0.0.1 only, fsync and synchronous_commit on, shared_buffers 32MB), stopped by its PID. "
                  "magpied at its defaults ([store] pool_size 8, max_batch 256, prepared_statements 256); "
                  "\"PG 2 nodes\" is two magpied on "
                  "127.0.0.2 and 127.0.0.3 sharing one database, the load split evenly between them. Every server "
                  "shares the machine's cores with the others and with PostgreSQL, so two nodes here measure "
                  "contention on one database, not added hardware.\n")
    report.append(f"SMTP ingest: `smtp-source -s SESSIONS -m {args.messages} -l SIZE` (two nodes: two smtp-source at "
                  "once, half the sessions and messages each), messages per second until all are in the mailbox "
                  "(counted in the store: SQLite by `magpie export --list`, PostgreSQL by a count of its rows, "
                  f"Postfix in its Maildir). Median (min–max) of {args.rounds} rounds in rotating order. WAL fsyncs: "
                  "PostgreSQL's own (pg_stat_wal.wal_sync) per 100 messages stored, one node / two nodes: how many "
                  "deliveries share a commit's flush.\n")
    report.append("| size | sessions | SQLite | PG 1 node | PG 2 nodes | Postfix | PG 1 / SQLite | PG 2 / SQLite | "
                  "PG 1 / Postfix | PG 2 / Postfix | WAL fsyncs per 100 msgs |")
    report.append("|---|---|---|---|---|---|---|---|---|---|---|")
    report.extend(ingest_rows)
    report.append("")
    report.append(f"IMAP: `imap_load --mix realistic` for {args.imap_seconds} s against a {args.imap_messages}-message "
                  "INBOX (the same messages APPENDed to each store; both PostgreSQL figures read one database), "
                  "operations per second median (min–max) / p99 ms; two nodes: two imap_load at once, half the "
                  "clients each, operations summed, p99 the worse node's. Dovecot tuned as in section 3. Errors: "
                  "commands answered NO or BAD, over every server and round.\n")
    report.append("| clients | SQLite ops/s / p99 | PG 1 node | PG 2 nodes | Dovecot | PG 1 / SQLite | PG 2 / SQLite | "
                  "PG 1 / Dovecot | PG 2 / Dovecot | errors |")
    report.append("|---|---|---|---|---|---|---|---|---|---|")
    report.extend(imap_rows)
    report.append("")


def main():
    # A SIGTERM (`timeout`, make's end) becomes an ordinary exit, so that every scenario's `finally` stops the
    # servers it started, by PID, PostgreSQL's throw-away cluster included; by default Python dies without them.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="all",
                        help="all, or one or more (comma-separated) of ingest, relay, imap, jmap, memory, startup, postgres")
    parser.add_argument("--imap-messages", type=int, default=10000)
    parser.add_argument("--imap-seconds", type=int, default=15)
    parser.add_argument("--idle", type=int, default=1000, help="idle connections in the memory scenario")
    parser.add_argument("--rounds", type=int, default=None, help="3; 1 with --quick")
    parser.add_argument("--relay-messages", type=int, default=2000)
    parser.add_argument("--startup-messages", type=int, default=100000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="small counts, for checking the harness itself")
    parser.add_argument("--sessions", default=None, help="ingest: session counts, comma-separated (1,10,50)")
    parser.add_argument("--sizes", default=None, help="ingest: message sizes in bytes, comma-separated (4096,65536)")
    parser.add_argument("--clients", default=None,
                        help="imap and jmap: client counts, comma-separated (1,10,100), e.g. 100 to run one count alone")
    parser.add_argument("--no-login-mix", action="store_true", help="imap: skip the login-heavy mix")
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    args.sessions_given, args.sizes_given = args.sessions, args.sizes
    known = {"ingest", "relay", "imap", "jmap", "memory", "startup", "postgres"}
    chosen = set(args.scenario.split(","))
    if chosen == {"all"}:
        chosen = known
    if not chosen <= known:
        parser.error(f"unknown scenario: {', '.join(sorted(chosen - known))}")
    args.sizes = [4096, 65536]
    args.sessions = [1, 10, 50]
    args.imap_clients = [1, 10, 100]
    args.jmap_clients = [1, 10, 100]
    if args.quick:
        args.rounds = args.rounds or 1
        args.messages, args.sessions, args.sizes, args.idle = 200, [10], [4096], 100
        args.imap_messages, args.imap_seconds, args.imap_clients, args.jmap_clients = 300, 3, [10], [10]
        args.relay_messages, args.startup_messages = 200, 300
    args.rounds = args.rounds or 3
    if args.sessions_given:
        args.sessions = [int(n) for n in args.sessions_given.split(",")]
    if args.sizes_given:
        args.sizes = [int(n) for n in args.sizes_given.split(",")]
    if args.clients:
        args.imap_clients = args.jmap_clients = [int(n) for n in args.clients.split(",")]
    if not MAGPIED.exists():
        sys.exit(f"{MAGPIED} is missing: run `make release` first")
    probe_dir = Path(tempfile.mkdtemp(prefix="magpie-bench-probe-"))
    fsyncs = fsyncs_per_second(probe_dir)
    shutil.rmtree(probe_dir)
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    report = ["# Benchmark results", "",
              f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/run.py "
              f"{' '.join(sys.argv[1:])}` on {platform.node()}: {os.cpu_count()} cores, {mem_gib:.0f} GiB, "
              f"disk {fsyncs:.0f} fsyncs/s from one writer. Figures vary between machines and runs: compare the "
              "ratios, measured side by side in the same run.", ""]
    load_start = os.getloadavg()
    started = time.monotonic()
    if "ingest" in chosen:
        scenario_ingest(args, report)
    if "relay" in chosen:
        scenario_relay(args, report)
    if "imap" in chosen:
        scenario_imap(args, report)
    if "jmap" in chosen:
        scenario_jmap(args, report)
    if "memory" in chosen:
        scenario_memory(args, report)
    if "startup" in chosen:
        scenario_startup(args, report)
    if "postgres" in chosen:
        scenario_postgres(args, report)
    # What else ran: on a shared machine the absolute figures fall with the load, the ratios much less.
    load_end = os.getloadavg()
    report.insert(3, f"Machine load (1-minute load average on {os.cpu_count()} cores): {load_start[0]:.1f} at the "
                     f"start, {load_end[0]:.1f} at the end, over {(time.monotonic() - started) / 60:.0f} minutes. A "
                     "load above the core count means other work (builds) shared the CPU with the servers under "
                     "test: trust the ratios more than the absolute figures.\n")
    # The changes that moved a figure, with their before and after (issue 17), kept by hand beside this script.
    changes = ROOT / "bench" / "CHANGES.md"
    if changes.exists():
        report.append(changes.read_text())
    Path(args.output).write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
