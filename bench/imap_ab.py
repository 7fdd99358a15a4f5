#!/usr/bin/python3
"""A/B runs for issue 17 (IMAP and JMAP at 1/10/100 clients): one populated magpied store and one Dovecot Maildir
kept between runs under /tmp/ib, so two magpied builds (BIN=dir holding magpied and magpie) and Dovecot are
measured alternately in the same machine state without populating 10,000 messages each time. Each magpied run
works on a fresh copy of the kept store; Dovecot (SHA512-CRYPT, tuned as bench/run.py) reuses its Maildir.
  BIN=DIR bench/imap_ab.py setup 10000
  BIN=DIR bench/imap_ab.py run magpied|magpied-jmap|dovecot CLIENTS SECONDS [perf]
"perf" records magpied with perf record -g into /tmp/ib/perf-magpied.data. Stop nothing by hand: each run stops
its server by PID; the kept Dovecot runs only during its runs."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R
from peers import Dovecot

STATE = Path("/tmp/ib/state.json")
if os.environ.get("BIN"):
    R.MAGPIED = Path(os.environ["BIN"]) / "magpied"
    R.MAGPIE = Path(os.environ["BIN"]) / "magpie"

class KeptDovecot(Dovecot):
    def __init__(self, d, host, port):
        self.dir, self.host, self.port, self.tls_port, self.proc = Path(d), host, port, 0, None
    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(15)
            self.proc.wait(timeout=30)

def setup(n):
    root = Path("/tmp/ib/magpied-base"); shutil.rmtree(root, ignore_errors=True); root.mkdir(parents=True)
    m = R.Magpied(root, R.free_port(), R.free_port()); m.setup(); m.start()
    t = time.time(); R.populate_imap("127.0.0.1", m.imap_port, n); print("magpied populate", time.time() - t, flush=True)
    m.stop()
    h = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "bench password"], capture_output=True, text=True, check=True).stdout.strip()
    tuned = ("service imap-login {\n  service_count = 0\n  process_min_avail = 2\n}\n"
             "service imap {\n  service_count = 0\n  process_limit = 1024\n}\n"
             "service auth {\n  client_limit = 4096\n}\n"
             "default_client_limit = 4096\nmaildir_very_dirty_syncs = yes\n")
    d = Dovecot({R.USER: h}, host="127.0.0.6", extra=tuned); d.start()
    t = time.time(); R.populate_imap("127.0.0.6", d.port, n); print("dovecot populate", time.time() - t, flush=True)
    d.proc.send_signal(15); d.proc.wait(timeout=30)
    STATE.write_text(json.dumps({"magpied": [str(root), m.port, m.imap_port], "dovecot": [str(d.dir), d.port]}))

def run(server, clients, seconds, perf=False, release=None):
    st = json.loads(STATE.read_text())
    if release:
        R.MAGPIED = Path(release) / "src/server/magpied"
    jmap = server == "magpied-jmap"
    if jmap:
        server = "magpied"
        http_port = R.free_port()
        os.environ["IB_EXTRA"] = (f'[http]\\nlisten = ["127.0.0.1:{http_port}"]\\nallow_plaintext_login = true\\n'
                                  'max_connections = 5000\\nmax_connections_per_ip = 10\\nmax_concurrent_requests = 1000\\n')
    if server == "magpied":
        base, port, iport = st["magpied"]
        work = Path("/tmp/ib/magpied-run"); shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        cfg = (Path(base) / "magpie.toml").read_text().replace(base, str(work))
        extra = os.environ.get("IB_EXTRA", "")
        (work / "magpie.toml").write_text(cfg + extra.replace("\\n", "\n"))
        s = R.Magpied.__new__(R.Magpied)
        s.root, s.port, s.imap_port, s.host, s.data, s.config, s.proc = work, port, iport, "127.0.0.1", work / "data", work / "magpie.toml", None
        s.start(); host = "127.0.0.1"
        pid = s.proc.pid
    else:
        d, port = st["dovecot"]; s = KeptDovecot(d, "127.0.0.6", port); s.start(); host, iport = "127.0.0.6", port
        pid = s.proc.pid
    time.sleep(1)
    load = os.getloadavg()[0]
    p = None
    if perf:
        p = subprocess.Popen(["perf", "record", "-g", "-o", f"/tmp/ib/perf-{server}.data", "-p", str(pid), "--", "sleep", str(seconds + 5)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = (R.jmap_load("127.0.0.1", http_port, clients, seconds) if jmap
             else R.imap_load(host, iport, clients, seconds, "realistic"))
    finally:
        if p: p.wait()
        s.stop()
    kinds = " ".join(f"{k}={v['ops']}:{v['p50_ms']:.1f}/{v['p99_ms']:.1f}" for k, v in r["kinds"].items())
    print(f"{server} c={clients} load={load:.1f}->{os.getloadavg()[0]:.1f} {r['ops_per_second']:.0f} ops/s p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} err {r['errors']} failed {r['failed_clients']} | {kinds}", flush=True)
    return r

if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(int(sys.argv[2]))
    else:
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), len(sys.argv) > 5 and sys.argv[5] == "perf",
            sys.argv[6] if len(sys.argv) > 6 else None)
