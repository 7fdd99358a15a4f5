"""The browser side of the webmail tests: Debian's Chromium, headless, driven by playwright-core through
web/tests/driver.mjs (PyPI, and so Playwright for Python, is out of reach; npm is not). One JSON command
per line each way, so the Python test decides the order of browser steps and outside events."""
import json
import os
import select
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DRIVER = WEB / "tests" / "driver.mjs"
CHROMIUM = os.environ.get("MAGPIE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = WEB / "test-artifacts"  # gitignored: screenshots of the main screens


def missing_prerequisite():
    """Why the browser tests cannot run here, or None. `make test` builds everything they need."""
    if not (WEB / "dist" / "index.html").exists():
        return "web/dist is not built: run make (npm ci, then vite build)"
    if not (WEB / "node_modules" / "playwright-core").exists():
        return "web/node_modules has no playwright-core: run make (npm ci in web/)"
    if shutil.which("node") is None:
        return "node is missing: scripts/install-deps.sh installs nodejs"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: scripts/install-deps.sh installs chromium"
    return None


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, workdir: Path, width=1280, height=800, name="browser"):
        self.workdir = workdir
        profile = workdir / f"{name}-profile"
        profile.mkdir(parents=True, exist_ok=True)
        # Where a failed step's screenshot goes (the driver names it in the error), beside the other artifacts
        # (made by the driver when a step fails).
        failures = ARTIFACTS / "failures" / f"{os.getpid()}-{workdir.name}-{name}"
        self.stderr = open(workdir / f"{name}-driver.log", "wb")
        self.proc = subprocess.Popen(
            ["node", str(DRIVER), json.dumps({"userDataDir": str(profile), "width": width, "height": height,
                                              "failureDir": str(failures)})],
            cwd=WEB, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.next_id = 0
        self.buffer = b""
        first = self._read_line(60)
        if not json.loads(first).get("ready"):
            raise BrowserError(f"driver did not start: {first!r}")

    def _read_line(self, timeout):
        import time
        deadline = time.time() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.time()
            if left <= 0:
                raise BrowserError(f"the browser driver did not answer in {timeout} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise BrowserError("the browser driver exited:\n" + self.driver_log())
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def driver_log(self):
        self.stderr.flush()
        return (self.workdir / "browser-driver.log").read_text(errors="replace")[-3000:] \
            if (self.workdir / "browser-driver.log").exists() else ""

    def call(self, op, **args):
        """Runs one step. A `timeout` among `args` is the step's own, in milliseconds, and goes to the driver
        (its default is 10 s); the answer is awaited that long and a minute more (a failed step's detail)."""
        self.next_id += 1
        self.proc.stdin.write((json.dumps({"id": self.next_id, "op": op, "args": args}) + "\n").encode())
        self.proc.stdin.flush()
        answer = json.loads(self._read_line(60 + args.get("timeout", 10000) / 1000))
        if not answer["ok"]:
            raise BrowserError(f"{op} {args}: {answer['error']}")
        return answer["value"]

    def __getattr__(self, op):
        if op.startswith("_"):
            raise AttributeError(op)
        return lambda **args: self.call(op, **args)

    def shot(self, test_name, screen):
        folder = ARTIFACTS / test_name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{screen}.png"
        self.call("screenshot", path=str(path))
        return path

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"id": 0, "op": "close"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=15)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
