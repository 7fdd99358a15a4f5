"""Other mail servers as test peers and differential oracles, each a throw-away instance from Debian's packages
under a temporary directory of its own (never /etc), on a loopback address, stopped by the test.

Postfix: the `postfix` package is installed unconfigured by scripts/install-deps.sh. Its daemons run as the
`postfix` user, so the instance directory must be reachable by it: make it with `instance_dir()`, not pytest's
private tmp_path."""
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def instance_dir(prefix="magpie-peer-"):
    """A directory the peers' unprivileged users can reach (removed by the caller with shutil.rmtree)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class Postfix:
    """A Postfix instance: its smtpd on host:port receives mail for `domains` into Maildirs (virtual delivery),
    and its smtp client relays everything else by `transport` lines ("crepes.fr smtp:[127.0.0.2]:25")."""

    def __init__(self, root: Path, host="127.0.0.4", port=25, hostname="mx.postfix.test",
                 domains=(), users=(), transport=(), extra=()):
        if shutil.which("postfix") is None:
            raise AssertionError("postfix is missing: scripts/install-deps.sh installs it")
        self.root, self.host, self.port = root, host, port
        self.etc, self.spool, self.data, self.mail = (root / "etc", root / "spool", root / "data", root / "mail")
        for d in (self.etc, self.spool, self.data, self.mail):
            d.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix")
        shutil.chown(self.mail, "nobody")
        self.log_path = root / "maillog"
        (self.etc / "vmailbox").write_text("".join(f"{u} {u.split('@')[1]}/{u.split('@')[0]}/\n" for u in users))
        (self.etc / "transport").write_text("".join(f"{line}\n" for line in transport))
        main = [
            "compatibility_level = 3.6",
            f"queue_directory = {self.spool}", f"data_directory = {self.data}",
            "mail_owner = postfix", "setgid_group = postdrop",
            f"myhostname = {hostname}", "mydestination =",
            "inet_interfaces = loopback-only", "inet_protocols = ipv4",
            f"virtual_mailbox_domains = {' '.join(domains) or 'nonexistent.invalid'}",
            f"virtual_mailbox_base = {self.mail}",
            f"virtual_mailbox_maps = texthash:{self.etc / 'vmailbox'}",
            "virtual_uid_maps = static:65534", "virtual_gid_maps = static:65534",
            f"transport_maps = texthash:{self.etc / 'transport'}",
            f"maillog_file = {self.log_path}", f"maillog_file_prefixes = {root}",
            "mynetworks = 127.0.0.0/8", "alias_maps =", "alias_database =",
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            "smtp_tls_security_level = may", "smtp_host_lookup = native",
            "queue_run_delay = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 2s",
            *extra,
        ]
        (self.etc / "main.cf").write_text("\n".join(main) + "\n")
        (self.etc / "master.cf").write_text(f"{host}:{port} inet n - n - - smtpd\n" + POSTFIX_SERVICES)

    def postfix(self, *args):
        return subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True, text=True, timeout=60)

    def start(self):
        result = self.postfix("start")
        if result.returncode != 0:
            raise AssertionError(f"postfix start failed: {result.stderr}\n{self.log()}")
        deadline = time.time() + 20
        while time.time() < deadline:
            if subprocess.run(["ss", "-ltnH", f"src {self.host}:{self.port}"], capture_output=True,
                              text=True).stdout.strip():
                return self
            time.sleep(0.1)
        raise AssertionError("postfix did not start listening:\n" + self.log())

    def stop(self):
        self.postfix("stop")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def flush(self):
        self.postfix("flush")

    def messages(self, user, wait=0.0):
        """The messages in a user's Maildir (bytes), waiting up to `wait` seconds for at least one."""
        local, domain = user.split("@")
        new = self.mail / domain / local / "new"
        deadline = time.time() + wait
        while True:
            found = sorted(new.iterdir()) if new.exists() else []
            if found or time.time() >= deadline:
                return [p.read_bytes() for p in found]
            time.sleep(0.1)


def postfix_available():
    return shutil.which("postfix") is not None and os.geteuid() == 0


def free_port(host="127.0.0.1"):
    import socket
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Dovecot:
    """A Dovecot (IMAP only, plain-text login allowed) in a directory of its own, killed by PID at the end.

    Dovecot refuses to run its login and mail processes as root: mail runs as Dovecot's own user, which owns the
    Maildirs, so the directory must be reachable by it (made here with instance_dir()). `users` maps addresses to
    password hashes in Dovecot's scheme syntax ("{PLAIN}secret", "{ARGON2ID}$argon2id$...", "{SHA512-CRYPT}$6$..."),
    or plain passwords (taken as {PLAIN}). `extra` lines are appended to dovecot.conf (e.g. the documented
    high-performance setup: service imap-login { service_count = 0 } and so on)."""

    def __init__(self, users: dict, host="127.0.0.1", port=None, extra="", tls=None):
        """`tls` = (certificate, private key) paths: also listen with implicit TLS on `tls_port`."""
        import pwd
        self.dir = instance_dir("magpie-dovecot-")
        self.host, self.port = host, port or free_port(host)
        self.tls_port = free_port(host) if tls else 0
        ssl = f"ssl = yes\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}" if tls else "ssl = no"
        self.proc = None
        mail_user = pwd.getpwnam("dovecot")
        (self.dir / "mail").mkdir()
        os.chown(self.dir / "mail", mail_user.pw_uid, mail_user.pw_gid)
        lines = []
        for address, password in users.items():
            secret = password if password.startswith("{") else "{PLAIN}" + password
            lines.append(f"{address}:{secret}::::::\n")
        (self.dir / "users").write_text("".join(lines))
        d = self.dir
        (d / "dovecot.conf").write_text(f"""
protocols = imap
listen = {host}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = {mail_user.pw_uid}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {self.tls_port}
  }}
}}
{extra}
""")

    def start_process(self):
        """Starts the master process without waiting for it (start() waits for the greeting)."""
        dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
        self.proc = subprocess.Popen([dovecot, "-F", "-c", str(self.dir / "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self.proc

    def start(self, timeout=30):
        import socket
        self.start_process()
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("dovecot did not start:\n" + self.log())

    def pids(self):
        """The master and every child process (for memory figures)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return [self.proc.pid] + [int(p) for p in out]

    def log(self):
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def dovecot_available():
    import pwd
    if shutil.which("dovecot") is None and not os.path.exists("/usr/sbin/dovecot"):
        return False
    try:
        pwd.getpwnam("dovecot")
    except KeyError:
        return False
    return True
