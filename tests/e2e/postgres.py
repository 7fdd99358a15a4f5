"""A throw-away PostgreSQL for the end-to-end tests (tests/postgres-cluster.sh: initdb into a temporary
directory as the `postgres` user when run as root, 127.0.0.1 and a free port, stopped at the end)."""
import re
import socket
import subprocess
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "postgres-cluster.sh"


def available():
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def skip_unless_available():
    """Skips the calling test or fixture when no PostgreSQL is installed."""
    if not available():
        import pytest
        pytest.skip("PostgreSQL is not installed (scripts/install-deps.sh)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self):
        # Not under pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="magpie-pg-"))
        # Searchable by all: its Unix socket is how servers in other network namespaces, or that dropped root,
        # reach it (the data directory inside stays private to `postgres`).
        self.dir.chmod(0o755)
        self.port = free_port()
        self.running = False
        # take_database's next database, made in the background while the current test runs.
        self._maker = None
        self._next = None
        self._next_template = None  # what _next is being made from
        self._lock = threading.Lock()
        # What take_database's databases are made from: None for PostgreSQL's own template1 (empty), else the
        # name of a database made by make_template. `origin` says it for each database made here.
        self.template = None
        self.origin = {}

    def start(self):
        subprocess.run([str(SCRIPT), "start", str(self.dir), str(self.port)], check=True, timeout=180)
        # Another port when something took this one first (another worker's cluster was handed it too).
        self.port = int((self.dir / "port").read_text())
        self.running = True
        return self

    def stop(self):
        if self._maker:
            self._maker.shutdown(wait=True, cancel_futures=True)
            self._maker = self._next = None
        if self.running:
            # Its files are deleted next: no shutdown checkpoint (see the script's `discard`).
            subprocess.run([str(SCRIPT), "discard", str(self.dir)], check=False, timeout=120)
            self.running = False
        # Removed by a process of its own that nobody waits for: a worker's cluster holds a database for each
        # of its tests (60 of them: 712 MB, 4.7 s to remove on a quiet machine), and each worker's last step
        # waited for that, at the very end of the e2e suite.
        subprocess.Popen(["rm", "-rf", str(self.dir)], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def outage(self):
        """Stops the server (fast shutdown: every client loses its connection) and keeps its files."""
        subprocess.run([str(SCRIPT), "stop", str(self.dir)], check=True, timeout=120)

    def resume(self):
        """Starts the server again after outage(), on the same port and data."""
        subprocess.run([str(SCRIPT), "resume", str(self.dir)], check=True, timeout=120)

    def dsn(self, database="magpie", socket=False):
        """TCP on 127.0.0.1 by default; `socket` gives the Unix socket, which works from any network namespace."""
        host = self.dir if socket else "127.0.0.1"
        return f"host={host} port={self.port} user=magpie dbname={database}"

    def create_database(self, prefix="magpie", socket=False):
        """A new empty database (one per magpied, or one shared by several nodes); returns its DSN."""
        return self.dsn(self._create(prefix), socket)

    def take_database(self, socket=False, empty=True):
        """A new database like create_database's, made ahead: each call hands over the one made in the
        background since the last call and starts making the next (CREATE DATABASE copies its template and
        syncs it: seconds on a loaded machine, which the test that needs it then need not wait for). They are
        made from `template` (use_template); `empty` asks for one made from template1, made now if the one
        ahead is not."""
        with self._lock:
            if self._maker is None:
                self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-create")
                self._next_template = self.template
                self._next = self._maker.submit(self._create, "magpie", self.template)
            ready = None
            if not (empty and self._next_template is not None):
                ready, self._next_template = self._next, self.template
                self._next = self._maker.submit(self._create, "magpie", self.template)
        name = ready.result(timeout=180) if ready else self._create("magpie")
        return self.dsn(name, socket)

    def _create(self, prefix, template=None, name=None):
        name = name or f"{prefix}_{uuid.uuid4().hex[:12]}"
        statement = f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.dsn(socket=True), "-c", statement],
                       check=True, capture_output=True, timeout=120)
        self.origin[name] = template
        return name

    @staticmethod
    def database_of(dsn):
        return re.search(r"dbname=(\S+)", dsn).group(1)

    def make_template(self, database):
        """A copy of `database` (no one may be connected to it) that later databases can be made from."""
        return self._create("template", template=database)

    def use_template(self, template):
        """take_database's databases are made from `template` (None: empty) from the next one it starts on."""
        with self._lock:
            self.template = template

    def remake(self, dsn, template=None):
        """Drops the database of `dsn` and makes it again, empty or from `template`, under the same name."""
        name = self.database_of(dsn)
        self.sql(self.dsn(socket=True), f"DROP DATABASE {name}")
        self._create("magpie", template=template, name=name)

    def sql(self, dsn, statement):
        result = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", dsn, "-c", statement], check=True,
                                capture_output=True, timeout=60)
        return result.stdout.decode()
