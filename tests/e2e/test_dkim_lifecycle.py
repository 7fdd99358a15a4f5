"""DKIM keys over a domain's life (issue 18): `magpie domain add` creates them (RSA-2048 and Ed25519, 0600,
owned by magpied's user), `magpie dkim rotate` adds newer selectors while `magpie dns` keeps publishing the
old ones, and `magpie dkim remove` retires one, never the key that signs now."""
import os
import pwd
import stat
import subprocess
import time

from conftest import MAGPIE
from test_dns_records import records


def run(tmp_path, *args, user=None):
    config = tmp_path / "magpie.toml"
    if not config.exists():
        extra = f'user = "{user}"\n' if user else ""
        config.write_text(f'[server]\nhostname = "mail.example.org"\ndata_dir = "{tmp_path / "data"}"\n{extra}')
    return subprocess.run([str(MAGPIE), "-c", str(config), *args], capture_output=True, timeout=60, text=True)


def dkim_records(tmp_path):
    out = run(tmp_path, "dns", "example.org", "--address", "192.0.2.25")
    assert out.returncode == 0, out.stderr
    return {o.split("._domainkey.")[0]: d for o, t, d in records(out.stdout) if "._domainkey." in o}


def today():
    return time.strftime("%Y%m%d", time.gmtime())


def test_domain_add_creates_both_keys_private_to_magpieds_user(tmp_path):
    assert os.geteuid() == 0, "the test checks chown to [server] user"
    nobody = pwd.getpwnam("nobody")
    added = run(tmp_path, "domain", "add", "example.org", user="nobody")
    assert added.returncode == 0, added.stderr
    key_dir = tmp_path / "data" / "dkim" / "example.org"
    names = sorted(p.name for p in key_dir.iterdir())
    assert names == [f"e{today()}.pem", f"r{today()}.pem"]
    for path in [key_dir, *key_dir.iterdir()]:
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), path
        assert stat.S_IMODE(st.st_mode) == (0o700 if path == key_dir else 0o600), path
    rsa = subprocess.run(["openssl", "pkey", "-in", str(key_dir / f"r{today()}.pem"), "-noout", "-text"],
                         capture_output=True, text=True, check=True).stdout
    assert "2048 bit" in rsa
    published = dkim_records(tmp_path)
    assert published[f"r{today()}"].startswith("v=DKIM1; k=rsa; p=")
    assert published[f"e{today()}"].startswith("v=DKIM1; k=ed25519; p=")


def test_domain_added_again_keeps_its_keys_and_no_dkim_skips_them(tmp_path):
    assert run(tmp_path, "domain", "add", "example.org").returncode == 0
    before = dkim_records(tmp_path)
    assert run(tmp_path, "domain", "del", "example.org").returncode == 0
    assert run(tmp_path, "domain", "add", "example.org").returncode == 0
    assert dkim_records(tmp_path) == before
    assert run(tmp_path, "domain", "add", "--no-dkim", "example.net").returncode == 0
    assert not (tmp_path / "data" / "dkim" / "example.net").exists()


def test_rotation_publishes_old_and_new_until_the_old_is_removed(tmp_path):
    assert run(tmp_path, "domain", "add", "example.org").returncode == 0
    old = dkim_records(tmp_path)
    rotated = run(tmp_path, "dkim", "rotate", "example.org")
    assert rotated.returncode == 0, rotated.stderr
    assert "magpie dkim remove example.org" in rotated.stdout
    both = dkim_records(tmp_path)
    new = {s: r for s, r in both.items() if s not in old}
    assert sorted(new) == [f"e{today()}b", f"r{today()}b"]
    assert all(both[s] == r for s, r in old.items())  # the overlap: every old record still published

    refused = run(tmp_path, "dkim", "remove", "example.org", f"r{today()}b")
    assert refused.returncode != 0 and "rotate first" in refused.stderr
    for selector in old:
        removed = run(tmp_path, "dkim", "remove", "example.org", selector)
        assert removed.returncode == 0, removed.stderr
    assert dkim_records(tmp_path) == new
    listed = run(tmp_path, "dkim", "list", "example.org").stdout.split("\n")
    assert any(line.startswith(f"r{today()}b rsa-sha256 ") for line in listed), listed
