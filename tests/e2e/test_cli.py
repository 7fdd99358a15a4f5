"""The administrator's command, `magpie`, against a real store: domains, users, aliases, export and check."""
import sqlite3
import smtplib
import subprocess

from conftest import DOMAIN, MAGPIE, embedded_store_only

ALICE = f"alice@{DOMAIN}"


def run(data, *args, input=None):
    return subprocess.run([str(MAGPIE), "--data", str(data), *args], input=input, capture_output=True, timeout=60)


def test_domains_users_and_aliases(tmp_path):
    data = tmp_path / "data"
    assert run(data, "domain", "add", "Example.ORG").returncode == 0
    assert run(data, "domain", "add", "example.org").returncode != 0  # names are case-insensitive
    assert run(data, "domain", "list").stdout == b"example.org\n"
    assert run(data, "user", "add", "carol@example.org", input=b"s3cret\n").returncode == 0
    again = run(data, "user", "add", "carol@example.org", input=b"s3cret\n")
    assert again.returncode != 0 and b"already exists" in again.stderr
    assert run(data, "user", "add", "dave@unknown.example", input=b"pw\n").returncode != 0
    assert run(data, "user", "add", "erin@example.org", input=b"").returncode != 0  # no password given
    assert run(data, "user", "list").stdout == b"carol@example.org\n"
    assert run(data, "alias", "add", "info@example.org", "carol@example.org").returncode == 0
    assert run(data, "alias", "add", "@example.org", "carol@example.org").returncode == 0
    assert run(data, "alias", "add", "x@example.org", "nobody@example.org").returncode != 0  # target must exist
    aliases = run(data, "alias", "list").stdout.decode().splitlines()
    assert sorted(aliases) == ["@example.org -> carol@example.org", "info@example.org -> carol@example.org"]
    busy = run(data, "domain", "del", "example.org")
    assert busy.returncode != 0  # users still live there
    assert run(data, "alias", "del", "info@example.org").returncode == 0
    assert run(data, "user", "del", "carol@example.org").returncode == 0
    assert run(data, "domain", "del", "example.org").returncode == 0
    assert run(data, "domain", "list").stdout == b""


def test_password_is_stored_as_argon2id_never_in_clear(tmp_path):
    data = tmp_path / "data"
    run(data, "domain", "add", "example.org")
    assert run(data, "user", "add", "carol@example.org", input=b"tr0ub4dor&3\n").returncode == 0
    db = sqlite3.connect(f"file:{data / 'magpie.db'}?mode=ro", uri=True)
    dump = "\n".join(db.iterdump())
    assert "$argon2id$" in dump
    assert "tr0ub4dor" not in dump
    assert run(data, "user", "passwd", "carol@example.org", input=b"another one\n").returncode == 0
    assert run(data, "user", "passwd", "nobody@example.org", input=b"x\n").returncode != 0


def test_a_servers_store_keeps_password_hashes_only(make_server):
    """The same on whichever backend the suite runs: the whole store, dumped, holds the argon2id hash only."""
    server = make_server(users=())
    server.magpie("user", "add", ALICE, input=b"tr0ub4dor&3\n")
    if server.store_dsn:
        dump = subprocess.run(["pg_dump", "--data-only", server.store_dsn], capture_output=True, check=True,
                              timeout=60).stdout.decode(errors="replace")
    else:
        db = sqlite3.connect(f"file:{server.data / 'magpie.db'}?mode=ro", uri=True)
        dump = "\n".join(db.iterdump())
        db.close()
    assert "$argon2id$" in dump
    assert "tr0ub4dor" not in dump


@embedded_store_only
def test_check_finds_a_damaged_blob(make_server):
    server = make_server()
    body = b"Subject: big\r\n\r\n" + (b"0123456789abcdef" * 4 + b"\r\n") * 3000  # above inline_blob_max: a file
    small = b"Subject: small\r\n\r\nsmall\r\n"
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.sendmail("s@remote.example", [ALICE], body)
        client.sendmail("s@remote.example", [ALICE], small)
    assert server.stop() == 0
    clean = server.magpie("check", check=False)
    assert clean.returncode == 0, clean.stdout
    files = [p for p in (server.data / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1
    damaged = bytearray(files[0].read_bytes())
    damaged[100] ^= 0x01
    files[0].write_bytes(bytes(damaged))
    result = server.magpie("check", check=False)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1]  # a one-line summary
    files[0].unlink()
    assert server.magpie("check", check=False).returncode == 1


def test_export_writes_mboxrd(make_server):
    server = make_server()
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.sendmail("s@remote.example", [ALICE], b"Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\n")
        client.sendmail("s@remote.example", [ALICE], b"Subject: two\r\n\r\nsecond\r\n")
    mbox = server.export(ALICE)
    assert mbox.count(b"\nFrom MAILER-DAEMON ") + mbox.startswith(b"From MAILER-DAEMON ") == 2
    assert b"\n>From the start\n" in mbox and b"\n>>From quoted\n" in mbox
    assert server.magpie("export", ALICE, "INBOX", "--uid", "9", check=False).returncode != 0
    assert server.magpie("export", ALICE, "NoSuchBox", check=False).returncode != 0
