"""Fixtures that run a real magpied (built by CMake) on free loopback ports with its own data dir.

Each test gets a fresh server: `server.smtp_port`, `server.export(user, mailbox, uid)` reads stored bytes back
through the `magpie` admin command, `server.magpie(...)` runs any admin command.

The store backend is a parameter of the whole suite: `--backend=sqlite|postgres|both` (default: the environment's
MAGPIE_E2E_BACKEND, else sqlite). Every test runs once per chosen backend (ids end in [sqlite] / [postgres]),
and every Magpied the test builds, through `make_server` or directly, puts its store there: on postgres, one
throw-away PostgreSQL per pytest session (per xdist worker; tests/e2e/postgres.py) and a fresh database per
Magpied data dir (a restart on the same workdir finds its database again). make_server's domain and users
come as a copy of a store provisioned once per configuration (_ProvisionedStores), not by running `magpie
domain add` and `user add` again for each test. A test that is inherently
one-backend says so with `@pytest.mark.backend("sqlite", reason=...)` and is skipped, with that reason, on the
other. Tests run in parallel (pytest-xdist, `-n`); one that binds a fixed address or port outside its own
network namespace, or shares a file with others, carries `@pytest.mark.xdist_group("host_net")` so that all
such tests run one after another on one worker (`--dist loadgroup`).
"""
import datetime
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

import postgres

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MAGPIE_BUILD_DIR", ROOT / "build"))
MAGPIED = BUILD / "src" / "server" / "magpied"
MAGPIE = BUILD / "src" / "cli" / "magpie"
DOMAIN = "example.test"
PASSWORD = "correct horse battery staple"
BACKENDS = ("sqlite", "postgres")
# For tests that open the embedded store's own files (magpie.db, blobs/) to look behind the interface.
embedded_store_only = pytest.mark.backend("sqlite", reason="looks into the embedded store's files")
# Tests that bind fixed addresses or ports in the machine's own network namespace: one at a time.
host_network = pytest.mark.xdist_group("host_net")


class _Backend:
    """The current test's backend (set by the autouse `store_backend` fixture before any other of its
    fixtures) and, on postgres, the session's cluster and the database of each data dir."""
    name = "sqlite"
    cluster = None
    databases: dict = {}

    provisioning = False  # make_server is building a server it will provision (its database may come so)

    @classmethod
    def store_section(cls, workdir: Path):
        if cls.name != "postgres":
            return None
        key = str(workdir.resolve())
        if key not in cls.databases:
            cls.databases[key] = cls.cluster.take_database(socket=True, empty=not cls.provisioning)
        return {"backend": "postgres", "dsn": cls.databases[key]}


def current_backend():
    return _Backend.name


def pytest_addoption(parser):
    parser.addoption("--backend", choices=BACKENDS + ("both",),
                     default=os.environ.get("MAGPIE_E2E_BACKEND", "sqlite"),
                     help="store backend of every magpied the tests start (default: $MAGPIE_E2E_BACKEND or sqlite)")


def pytest_configure(config):
    config.addinivalue_line("markers", "backend(name, reason=...): the test runs on that store backend only")
    config.addinivalue_line("markers", "own_store(reason=...): the test chooses its stores itself; it runs once, "
                            "on the first chosen pass, whichever backend that is")
    config.addinivalue_line("markers", "xdist_group(name): tests of one group run one after another on one worker")


def pytest_generate_tests(metafunc):
    if "store_backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("backend")
        metafunc.parametrize("store_backend", BACKENDS if chosen == "both" else (chosen,), indirect=True)


@pytest.fixture(autouse=True)
def store_backend(request):
    """The backend of this test run; autouse, so it is set up before the test's other fixtures (and before a
    network namespace: the PostgreSQL is reached through its Unix socket, from any namespace)."""
    name = getattr(request, "param", "sqlite")
    only = request.node.get_closest_marker("backend")
    if only and name not in only.args:
        pytest.skip(f"{only.args[0]} only: {only.kwargs.get('reason', 'one-backend test')}")
    own = request.node.get_closest_marker("own_store")
    chosen = request.config.getoption("backend")
    if own and name != (BACKENDS[0] if chosen == "both" else chosen):
        pytest.skip(f"runs once, on the first pass: {own.kwargs.get('reason', 'it chooses its stores itself')}")
    _Backend.name = name
    _Backend.cluster = request.getfixturevalue("postgres_cluster") if name == "postgres" else None
    yield name
    _Backend.name, _Backend.cluster = "sqlite", None


def make_certificate(directory: Path, hostname: str):
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={hostname}",
         "-addext", f"subjectAltName=DNS:{hostname},DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def toml_pair(key, value):
    return f"{key} = {toml_value(value)}"


def client_tls_context():
    """The tests' certificates are self-signed: encrypt, but do not verify."""
    import ssl
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Magpied:
    """One magpied process and its data directory."""

    def __init__(self, workdir: Path, smtp_options: dict | None = None, tls: bool = True,
                 hostname: str = "mx.example.test", imap_options: dict | None = None,
                 auth_options: dict | None = None, host: str = "127.0.0.1", smtp_port: int = 0,
                 sections: dict | None = None, store_dsn: str | None = None):
        """`host` is the loopback address every listener binds (the seed's two servers use 127.0.0.2 and
        127.0.0.3, on port 25 inside a network namespace); `sections` adds whole TOML sections by name;
        `store_dsn` puts the store in that PostgreSQL database (several servers may share one)."""
        if store_dsn:
            sections = dict(sections or {})
            sections["store"] = {"backend": "postgres", "dsn": store_dsn, **sections.get("store", {})}
        elif "store" not in (sections or {}):
            # The suite's backend, unless the test chose one. Written right after [server], so that a test that
            # appends lines to the configuration never appends them to [store].
            store = _Backend.store_section(workdir)
            if store:
                sections = {"store": store, **(sections or {})}
        self.workdir = workdir
        self.host = host
        self.ports = {}
        # Every listener this configuration binds, so start() returns only once all of them are up.
        self.expected = {"smtp", "imap"} | ({"imaps"} if tls else set())
        for name, service, tls_service in (("submission", "submission", "submissions"), ("http", "http", "https")):
            options = (sections or {}).get(name, {})
            if options.get("listen"):
                self.expected.add(service)
            if options.get("listen_tls"):
                self.expected.add(tls_service)
        self.data = workdir / "data"
        self.hostname = hostname
        self.config = workdir / "magpie.toml"
        self.log_path = workdir / "magpied.log"
        self.proc = None
        self.smtp_port = None
        self.imap_port = None
        self.imaps_port = None
        lines = ["[server]", f'hostname = "{hostname}"', f'data_dir = "{self.data}"', 'log_level = "debug"',
                 "threads = 2", "shutdown_timeout = 5", ""]
        sections = dict(sections or {})
        # DNS on loopback (the null_dns fixture) unless the test names its own resolver ([mailauth] falls back
        # to [queue]'s): no lookup leaves the machine, and none waits out the machine's resolver.
        if _null_dns_address and "resolver" not in sections.get("queue", {}):
            sections["queue"] = {**sections.get("queue", {}), "resolver": _null_dns_address}
        # The PostgreSQL database of this server's store, or None on the embedded store.
        self.store_dsn = sections.get("store", {}).get("dsn") if sections.get("store", {}).get("backend") == "postgres" else None
        if "store" in sections:
            lines += ["[store]"] + [toml_pair(k, v) for k, v in sections.pop("store").items()] + [""]
        if tls:
            cert, key = make_certificate(workdir, hostname)
            lines += ["[tls]", f'certificate = "{cert}"', f'private_key = "{key}"', ""]
        lines += ["[smtp]", f'listen = ["{host}:{smtp_port}"]']
        lines += [toml_pair(k, v) for k, v in (smtp_options or {}).items()]
        lines += ["", "[imap]", f'listen = ["{host}:0"]'] + ([f'listen_tls = ["{host}:0"]'] if tls else [])
        lines += [toml_pair(k, v) for k, v in (imap_options or {}).items()]
        if auth_options:
            lines += ["", "[auth]"] + [toml_pair(k, v) for k, v in auth_options.items()]
        for name, options in (sections or {}).items():
            lines += ["", f"[{name}]"] + [toml_pair(k, v) for k, v in options.items()]
        self.config.write_text("\n".join(lines) + "\n")

    # Administration through the real `magpie` command.
    def magpie(self, *args, input=None, check=True):
        result = subprocess.run([str(MAGPIE), "-c", str(self.config), *args], input=input,
                                capture_output=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"magpie {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result

    def add_user(self, address, password=PASSWORD):
        self.magpie("user", "add", address, input=(password + "\n").encode())

    def export(self, user, mailbox="INBOX", uid=None) -> bytes:
        args = ["export", user, mailbox] + (["--uid", str(uid)] if uid is not None else [])
        return self.magpie(*args).stdout

    def uids(self, user, mailbox="INBOX"):
        out = self.magpie("export", user, mailbox, "--list").stdout.decode()
        return [int(line.split()[0]) for line in out.splitlines() if line.strip()]

    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")
        # Readiness is read from this process's own output only: the log is appended to across restarts, and
        # a killed predecessor's "listening on" lines must not count.
        self.log_offset = self.log.tell()
        self.proc = subprocess.Popen([str(MAGPIED), "-c", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.current_log()
            found = dict((service, int(port)) for port, service in
                         re.findall(r"listening on " + re.escape(self.host) + r":(\d+) \((\w+)\)", text))
            if self.expected <= found.keys():
                self.ports = found
                self.smtp_port, self.imap_port = found["smtp"], found["imap"]
                self.imaps_port = found.get("imaps")
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"magpied exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise AssertionError("magpied did not start listening:\n" + self.current_log())

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.log.close()
        return code

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def current_log(self):
        """What the current (or last started) process has written."""
        with open(self.log_path, "rb") as f:
            f.seek(getattr(self, "log_offset", 0))
            return f.read().decode(errors="replace")


@pytest.fixture(scope="session")
def postgres_cluster():
    """One PostgreSQL for the whole session, started on first use and stopped at the end."""
    postgres.skip_unless_available()
    cluster = postgres.PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster():
    """A PostgreSQL of the test's own, which it may stop and start again under its servers (outage, resume)
    without disturbing any other test."""
    postgres.skip_unless_available()
    cluster = postgres.PostgresCluster().start()
    yield cluster
    cluster.stop()


class _ProvisionedStores:
    """Stores provisioned by make_server (its domain and users), kept per pytest process and copied into each
    later server whose configuration is the same but for its own paths and database: the test build's `magpie
    domain add` (a DKIM key pair, the blob directories) and `magpie user add` (argon2id) cost about 1.4 s of
    CPU a test, and every test starts from the same provisioned state anyway. Keyed by the configuration as
    written (the test's own paths and database made alike), the users and the day (DKIM selectors are dated).
    What is kept: a copy of the data dir and, on postgres, a template database; take_database then makes the
    next databases from the template last used, so most tests find theirs provisioned already. A database a
    test named itself (store_dsn) is provisioned each time."""
    root = None
    kept: dict = {}  # key -> (data dir copy, template database or None)

    @classmethod
    def key(cls, server, users):
        """What the provisioned files depend on: `magpie domain add` and `user add` read [store] and the data
        directory, nothing else of the configuration (src/server/store_factory.cpp, src/cli/dns.cpp), so a test
        whose [smtp], [imap], [http] or [queue] differ still gets a copy. Keyed by the whole configuration, the
        copies were rarely reused: 309 `domain add` (an RSA-2048 key pair each) and 469 `user add` (argon2id)
        in one e2e run, a fifth of its CPU."""
        config = server.config.read_text().replace(str(server.workdir), "@workdir@")
        if server.store_dsn is not None:
            config = config.replace(server.store_dsn, "@dsn@")
        parsed = tomllib.loads(config)
        relevant = {"store": parsed.get("store", {}), "data_dir": parsed.get("server", {}).get("data_dir")}
        return (json.dumps(relevant, sort_keys=True), tuple(users),
                datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d"))

    @classmethod
    def provision(cls, server, users, tmp_path_factory):
        key = cls.key(server, users)
        kept = cls.kept.get(key)
        cluster, origin = None, None
        if server.store_dsn is not None:
            cluster = _Backend.cluster
            origin = cluster.origin.get(cluster.database_of(server.store_dsn), "unknown") if cluster else "unknown"
            if origin == "unknown":  # a database the test made: provision it, keep nothing
                cls.add(server, users)
                return
        if kept is not None:
            data, template = kept
            if cluster is not None and origin != template:
                cluster.remake(server.store_dsn, template)
            if cluster is not None:
                cluster.use_template(template)
            shutil.copytree(data, server.data, symlinks=True)
            return
        if cluster is not None and origin is not None:
            cluster.remake(server.store_dsn)  # made from another key's template: start empty
        cls.add(server, users)
        if cls.root is None:
            cls.root = tmp_path_factory.mktemp("provisioned")
        copy = cls.root / str(len(cls.kept))
        # No magpie process has the store open now: magpie.db alone is the whole embedded database (a clean
        # close leaves no -wal; were one there, it would be copied with it), and no one is connected to the
        # PostgreSQL database, as a template needs.
        shutil.copytree(server.data, copy, symlinks=True)
        template = cluster.make_template(cluster.database_of(server.store_dsn)) if cluster is not None else None
        cls.kept[key] = (copy, template)
        if cluster is not None:
            cluster.use_template(template)

    @staticmethod
    def add(server, users):
        server.magpie("domain", "add", DOMAIN)
        for user in users:
            server.add_user(f"{user}@{DOMAIN}")


@pytest.fixture
def make_server(tmp_path, tmp_path_factory, request):
    servers = []

    def factory(name="mx", users=("alice", "bob"), provision=True, **kwargs):
        """`provision=False` adds no domain and no users: a second node on a store that has them."""
        workdir = tmp_path / name
        workdir.mkdir()
        _Backend.provisioning = provision
        try:
            server = Magpied(workdir, **kwargs)
        finally:
            _Backend.provisioning = False
        if provision:
            _ProvisionedStores.provision(server, users, tmp_path_factory)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        code = server.stop()
        assert code in (0, None, -signal.SIGKILL), f"magpied exited with {code}:\n{server.log_text()[-3000:]}"


@pytest.fixture
def server(make_server):
    return make_server()


def smtp_dialogue(port, lines, source="127.0.0.1", read_timeout=10):
    """Speaks raw SMTP: sends each item of `lines` (bytes) and returns everything the server said.

    Items are sent as given (no CRLF added), so a test controls every byte, pipelining included. After a 354
    reply, items up to the one that ends the content (".\r\n") get no reply: those wait a moment only, for an
    early error, not the whole `read_timeout` (which made a typed message cost ten seconds a line)."""
    import socket
    sock = socket.create_connection(("127.0.0.1", port), timeout=read_timeout, source_address=(source, 0))
    received = b""
    in_content = False
    try:
        received += read_reply(sock)
        for chunk in lines:
            sock.sendall(chunk)
            ends_content = chunk == b".\r\n" or chunk.endswith(b"\r\n.\r\n")
            if in_content and not ends_content:
                received += read_available(sock, 0.5)
                continue
            received += read_available(sock, read_timeout)
            replies = [line for line in received.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
            in_content = bool(replies) and replies[-1].startswith(b"354")
    finally:
        sock.close()
    return received


def read_line(sock):
    """One line ending in CRLF (an IMAP greeting or tagged answer that fits one read), or what came before the
    peer closed."""
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_reply(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        last = data.rstrip(b"\r\n").split(b"\r\n")[-1]
        if data.endswith(b"\r\n") and len(last) >= 4 and last[3:4] == b" ":
            return data


def read_available(sock, timeout):
    """Reads until the server has been quiet for a moment after a complete reply."""
    data = b""
    sock.setblocking(False)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready, _, _ = select.select([sock], [], [], 0.3 if data.endswith(b"\r\n") else 1.0)
            if not ready:
                if data.endswith(b"\r\n"):
                    break
                continue
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.setblocking(True)
    return data


CLONE_NEWNET = 0x40000000


@pytest.fixture
def network_namespace():
    """Runs the test (and every process it starts) in a network namespace of its own with only loopback up, so
    servers can bind port 25 on 127.0.0.2 and 127.0.0.3 without meeting anything else on the machine."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(original)
        raise AssertionError(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())} (needs root)")
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        yield
    finally:
        libc.setns(original, CLONE_NEWNET)
        os.close(original)


class Dnsmasq:
    """A local DNS server answering from the records a test gives it, and nothing else (no upstream)."""

    def __init__(self, workdir: Path, address="127.0.0.53", port=53):
        self.address, self.port = address, port
        self.conf = workdir / "dnsmasq.conf"
        self.log_path = workdir / "dnsmasq.log"
        self.proc = None

    def start(self, records: list[str]):
        """`records` are dnsmasq option lines: "mx-host=hamburger.edu,mx.hamburger.edu,10",
        "host-record=mx.hamburger.edu,127.0.0.3", "txt-record=...". Names it has no record of answer REFUSED (no
        upstream); the single line "address=/#/" makes every name NXDOMAIN instead (null_dns)."""
        lines = ["no-resolv", "no-hosts", "no-poll", "bind-interfaces", f"listen-address={self.address}",
                 f"port={self.port}", "log-queries", *records]
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", f"--conf-file={self.conf}",
                                      "--log-facility=-", "--user=root", "--pid-file="],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited:\n" + self.log_path.read_text(errors="replace"))
            if "started" in self.log_path.read_text(errors="replace"):
                return self
            time.sleep(0.05)
        raise AssertionError("dnsmasq did not start:\n" + self.log_path.read_text(errors="replace"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc:
            self.log.close()


# "127.0.0.1:port" of this pytest process's null DNS server (null_dns), once it runs.
_null_dns_address = None


def free_udp_port(host="127.0.0.1"):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def null_dns(tmp_path_factory):
    """A DNS server on loopback that knows no name (NXDOMAIN to every question): the resolver of every magpied
    the tests start, unless a test names its own. Without it magpied asked the machine's resolver (the SPF and
    DMARC lookups of every message received on port 25, MX lookups): traffic off the machine, which the tests
    must never make, and on a machine whose resolver does not answer, seconds per message (24 s for one
    message, 2.5 minutes for the 1,500 of test_imap_mbsync). One per pytest process (xdist worker)."""
    global _null_dns_address
    import shutil
    if shutil.which("dnsmasq") is None:
        raise AssertionError("dnsmasq (package dnsmasq-base) is missing: scripts/install-deps.sh installs it")
    server = Dnsmasq(tmp_path_factory.mktemp("null-dns"), address="127.0.0.1", port=free_udp_port())
    server.start(["address=/#/"])  # every name: NXDOMAIN (with no records and no upstream dnsmasq says REFUSED)
    _null_dns_address = f"{server.address}:{server.port}"
    yield server
    _null_dns_address = None
    server.stop()


@pytest.fixture
def dnsmasq(tmp_path):
    import shutil
    if shutil.which("dnsmasq") is None:
        raise AssertionError("dnsmasq (package dnsmasq-base) is missing: scripts/install-deps.sh installs it")
    server = Dnsmasq(tmp_path)
    yield server
    server.stop()
