"""A throw-away PostgreSQL for the end-to-end tests (tests/postgres-cluster.sh: initdb into a temporary
directory as the `postgres` user when run as root, 127.0.0.1 and a free port, stopped at the end)."""
import shutil
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
        self._lock = threading.Lock()

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
            subprocess.run([str(SCRIPT), "stop", str(self.dir)], check=False, timeout=120)
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)

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

    def take_database(self, socket=False):
        """A new empty database like create_database's, made ahead: each call hands over the one made in the
        background since the last call and starts making the next (CREATE DATABASE copies template1 and
        syncs it: seconds on a loaded machine, which the test that needs it then need not wait for)."""
        with self._lock:
            if self._maker is None:
                self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-create")
                self._next = self._maker.submit(self._create, "magpie")
            ready, self._next = self._next, self._maker.submit(self._create, "magpie")
        return self.dsn(ready.result(timeout=180), socket)

    def _create(self, prefix):
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.dsn(socket=True), "-c",
                        f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=120)
        return name

    def sql(self, dsn, statement):
        result = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", dsn, "-c", statement], check=True,
                                capture_output=True, timeout=60)
        return result.stdout.decode()
