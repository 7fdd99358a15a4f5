"""A throw-away PostgreSQL for the end-to-end tests (tests/postgres-cluster.sh: initdb into a temporary
directory as the `postgres` user when run as root, 127.0.0.1 and a free port, stopped at the end)."""
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "postgres-cluster.sh"


def available():
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


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

    def start(self):
        subprocess.run([str(SCRIPT), "start", str(self.dir), str(self.port)], check=True, timeout=180)
        self.running = True
        return self

    def stop(self):
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
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.dsn(socket=True), "-c",
                        f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
        return self.dsn(name, socket)

    def sql(self, dsn, statement):
        result = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", dsn, "-c", statement], check=True,
                                capture_output=True, timeout=60)
        return result.stdout.decode()
