#!/usr/bin/python3
"""A/B runs of SMTP ingest for issue 17: magpied builds side by side against smtp-source, each with its own store,
started once and measured in alternating rounds in the same machine state.
  bench/ingest_ab.py SESSIONS MESSAGES SIZE [BUILD_DIR[#SECTION.KEY=VALUE,...] ...]
A BUILD_DIR holds server/magpied and cli/magpie (build-release/src by default; copy a build aside to compare it
with a newer one). Settings after a '#' go into that server's configuration (e.g. build-release/src#server.threads=1
against build-release/src compares one network thread with the default; a value is TOML: 1, true, "text"). Each round prints msgs/s (from the first connection until all are counted in the store, as
bench/run.py measures), magpied's CPU per message (user + system, all threads) and its voluntary context switches
per message; the end prints the medians. ROUNDS (environment, default 3) sets the rounds. BACKEND=postgres
(environment) stores into a throw-away PostgreSQL started for the run (a database per server, as bench/run.py's
section 7) and prints the CPU of PostgreSQL's processes per message too (e.g. build-release/src#store.prepared_statements=0
against build-release/src). Every server is stopped by PID at the end; nothing listens beyond loopback."""
import os, statistics, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid):
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def voluntary_switches(pid):
    total = 0
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                total += int(line.split()[1])
    return total


def postgres_cpu_seconds(pg):
    """The postmaster's CPU and its children's (the backends, the WAL writer, the checkpointer)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(proc.name) == pg.pid or int(fields[1]) == pg.pid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def configure(server, settings):
    """Puts SECTION.KEY=VALUE settings (comma-separated) into the server's magpie.toml: under the section's
    table when the file has one, else in a table of its own."""
    text = server.config.read_text()
    for setting in filter(None, settings.split(",")):
        name, value = setting.split("=", 1)
        section, key = name.split(".", 1)
        header = f"[{section}]\n"
        text = text.replace(header, f"{header}{key} = {value}\n", 1) if header in text else \
            text + f"{header}{key} = {value}\n"
    server.config.write_text(text)


def main():
    sessions, messages, size = (int(a) for a in sys.argv[1:4])
    builds = sys.argv[4:] or [str(ROOT / "build-release" / "src")]
    rounds = int(os.environ.get("ROUNDS", "3"))
    root = R.instance_dir("magpie-ingest-ab-")
    servers, pg = [], None
    try:
        if os.environ.get("BACKEND") == "postgres":
            pg = R.BenchPostgres()
        for i, build in enumerate(builds):
            directory, _, settings = build.partition("#")
            R.MAGPIED, R.MAGPIE = Path(directory) / "server" / "magpied", Path(directory) / "cli" / "magpie"
            (root / str(i)).mkdir()
            extra = f'[store]\nbackend = "postgres"\ndsn = "{pg.create_database(f"ab{i}")}"\n' if pg else ""
            server = R.Magpied(root / str(i), R.free_port(), extra=extra)
            configure(server, settings)
            server.magpie("domain", "add", "--no-dkim", R.DOMAIN)
            server.magpie("user", "add", R.USER, input=b"bench password\n")
            server.start()
            servers.append(server)
        results = {build: [] for build in builds}
        for r in range(rounds):
            order = list(zip(builds, servers))
            for build, server in (order if r % 2 == 0 else order[::-1]):
                dsn = server.config.read_text().split('dsn = "', 1)[1].split('"', 1)[0] if pg else None
                stored = (lambda: R.stored_in_postgres(pg, dsn)) if pg else server.stored
                base, pid = stored(), server.proc.pid
                cpu, switches = cpu_seconds(pid), voluntary_switches(pid)
                pg_cpu = postgres_cpu_seconds(pg) if pg else 0.0
                rate = R.measure(lambda: R.smtp_source("127.0.0.1", server.port, sessions, messages, size),
                                 lambda: stored() - base, messages)
                figures = (rate, 1000 * (cpu_seconds(pid) - cpu) / messages,
                           (voluntary_switches(pid) - switches) / messages,
                           1000 * (postgres_cpu_seconds(pg) - pg_cpu) / messages if pg else 0.0)
                results[build].append(figures)
                print(f"{build} round {r}: {figures[0]:.0f} msgs/s, CPU {figures[1]:.3f} ms/message, "
                      f"{figures[2]:.1f} voluntary context switches/message"
                      + (f", PostgreSQL CPU {figures[3]:.3f} ms/message" if pg else ""), flush=True)
        for build in builds:
            rates, cpus, switches, pg_cpus = zip(*results[build])
            print(f"{build}: median {statistics.median(rates):.0f} msgs/s ({min(rates):.0f}-{max(rates):.0f}), "
                  f"CPU {statistics.median(cpus):.3f} ms/message, {statistics.median(switches):.1f} switches/message"
                  + (f", PostgreSQL CPU {statistics.median(pg_cpus):.3f} ms/message" if pg else ""))
    finally:
        for server in servers:
            server.stop()
        if pg:
            pg.stop()


if __name__ == "__main__":
    main()
