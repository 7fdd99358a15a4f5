"""`magpie mail`, the command-line user agent (issue 15), driven as a person would: against magpied (submission
with STARTTLS and IMAP with STARTTLS, certificates verified against the test's CA file), against Dovecot (IMAP)
and Postfix (SMTP) from Debian's packages, and in the round trip between two magpied instances."""
import email
import email.policy
import imaplib
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DOMAIN, MAGPIE, PASSWORD, Magpied, host_network
from peers import Dovecot, Postfix, dovecot_available, free_port, instance_dir, postfix_available

ALICE, BOB, CAROL = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"
SECTIONS = {"submission": {"listen": ["127.0.0.1:0"]}}


def write_account(path: Path, address, imap=None, smtp=None, ca_file=None, extra=""):
    lines = [f'address = "{address}"', 'password_env = "MAGPIE_TEST_PASSWORD"']
    if ca_file:
        lines.append(f'ca_file = "{ca_file}"')
    lines.append(extra)
    for name, endpoint in (("imap", imap), ("smtp", smtp)):
        if endpoint:
            lines.append(f"[{name}]")
            lines += [f'{k} = {v!r}'.replace("'", '"') if isinstance(v, str) else f"{k} = {str(v).lower()}"
                      for k, v in endpoint.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Agent:
    """One person's `magpie mail` with an account file."""

    def __init__(self, account: Path, password=PASSWORD):
        self.account, self.password = account, password

    def run(self, *args, input=b"", check=True, env=None):
        environment = dict(os.environ, MAGPIE_TEST_PASSWORD=self.password, **(env or {}))
        environment.pop("EDITOR", None)
        environment.pop("VISUAL", None)
        result = subprocess.run([str(MAGPIE), "mail", "--account", str(self.account), *args], input=input,
                                capture_output=True, timeout=60, env=environment)
        if check and result.returncode != 0:
            raise AssertionError(f"magpie mail {' '.join(map(str, args))} exited {result.returncode}: "
                                 f"{result.stderr.decode(errors='replace')}")
        return result

    def out(self, *args, **kwargs):
        return self.run(*args, **kwargs).stdout.decode()

    def uids(self, *args):
        """UIDs in the order `list` (or `search`) prints them: newest first."""
        return [int(m) for m in re.findall(r"^\s*(\d+) ", self.out(*(args or ("list",))), re.M)]


def wait_for(predicate, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def mx(make_server):
    return make_server(users=("alice", "bob", "carol"), sections=SECTIONS)


def agent_for(server, address, tmp_path, name=None, **extra):
    account = write_account(tmp_path / f"{address}.toml", f"{name} <{address}>" if name else address,
                            imap={"host": "127.0.0.1", "port": server.imap_port, "tls": "starttls"},
                            smtp={"host": "127.0.0.1", "port": server.ports["submission"], "tls": "starttls"},
                            ca_file=str(server.workdir / "cert.pem"), **extra)
    return Agent(account)


@pytest.fixture
def people(mx, tmp_path):
    return {name: agent_for(mx, f"{name}@{DOMAIN}", tmp_path, name=name.title()) for name in ("alice", "bob", "carol")}


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def newest(server, user, mailbox="INBOX", count=1):
    uids = wait_for(lambda: (u := server.uids(user, mailbox)) and len(u) >= count and u, what=f"mail for {user}")
    return parse(server.export(user, mailbox, uids[-1]))


# ---- against magpied ---------------------------------------------------------------------------------------

def test_send_with_attachments_then_list_and_read(mx, people, tmp_path):
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 not really\n")
    blob = tmp_path / "data.bin"
    blob.write_bytes(bytes(range(256)))
    sent = people["alice"].out("send", "--to", f"Bob <{BOB}>", "--bcc", CAROL, "-s", "Quarterly report", "-a",
                               str(report), "-a", f"{blob};type=application/x-magpie-test",
                               input=b"Hi Bob,\nthe numbers.\n")
    assert f"accepted {BOB}" in sent and f"accepted {CAROL}" in sent
    blind = newest(mx, CAROL)  # Bcc: delivered, but named in no copy
    assert blind["Subject"] == "Quarterly report" and blind["Bcc"] is None and CAROL not in str(blind)
    filed = parse(mx.export(ALICE, "Sent", mx.uids(ALICE, "Sent")[0]))  # the copy in Sent keeps the Bcc
    assert filed["Message-ID"] == newest(mx, BOB)["Message-ID"] and CAROL in filed["Bcc"]
    people["alice"].run("send", "--no-save-sent", "--to", BOB, "-s", "no copy", input=b"x\n")
    assert len(mx.uids(ALICE, "Sent")) == 1

    stored = parse(mx.export(BOB, "INBOX", wait_for(lambda: mx.uids(BOB), what="mail for bob")[0]))
    assert stored["Subject"] == "Quarterly report" and ALICE in stored["From"] and stored["Message-ID"]
    parts = {p.get_filename(): p for p in stored.iter_attachments()}
    assert parts["report.pdf"].get_content_type() == "application/pdf"  # guessed from the extension
    assert parts["data.bin"].get_content_type() == "application/x-magpie-test"
    assert parts["data.bin"].get_content() == bytes(range(256))

    listing = people["bob"].out("list")
    assert re.search(r"^\s*1 N\s+\S+ \S+ Alice\S*\s+Quarterly report @$", listing, re.M), listing
    shown = people["bob"].out("read", "1")
    assert "Subject: Quarterly report" in shown and "Hi Bob,\nthe numbers.\n" in shown
    assert re.search(r"1\. report\.pdf \(application/pdf, 20 bytes\)", shown)
    assert re.search(r"2\. data\.bin \(application/x-magpie-test, 256 bytes\)", shown)
    # Reading marked it seen (BODY[] without PEEK).
    assert re.search(r"^\s*1  ", people["bob"].out("list"), re.M)


def test_list_pages_newest_first(mx, people):
    for n in range(5):
        people["alice"].run("send", "--to", BOB, "-s", f"message {n}", input=b"x\n")
    wait_for(lambda: len(mx.uids(BOB)) == 5, what="five messages")
    first = people["bob"].out("list", "--page-size", "2")
    assert "5 messages, page 1 of 3" in first
    assert people["bob"].uids("list", "--page-size", "2") == [5, 4]
    assert people["bob"].uids("list", "--page-size", "2", "--page", "3") == [1]


def test_html_mail_is_rendered_to_text(mx, people):
    html = ("<html><head><style>p{color:red}</style><script>alert(1)</script></head><body><h1>News</h1>"
            "<p>Read <a href='https://example.org/x'>the article</a>.</p><ul><li>one</li><li>two</li></ul></body></html>")
    with smtplib.SMTP("127.0.0.1", mx.smtp_port) as client:
        client.sendmail(ALICE, [BOB], (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: html only\r\nMIME-Version: 1.0\r\n"
                                       f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n").encode())
    wait_for(lambda: mx.uids(BOB), what="the html message")
    shown = people["bob"].out("read", "1")
    body = shown.split("\n\n", 1)[1]
    assert "<" not in body.replace("<https://example.org/x>", "")
    assert "News\n\nRead the article <https://example.org/x>.\n\n- one\n- two" in body
    assert "alert" not in body and "color" not in body


def test_reply_quotes_threads_and_marks_answered(mx, people):
    people["alice"].run("send", "--to", BOB, "--cc", CAROL, "-s", "Lunch?", input=b"Shall we?\n\nAt noon.\n")
    original = newest(mx, BOB)
    people["bob"].run("reply", "1", input=b"Yes!\n")
    reply = newest(mx, ALICE)
    assert reply["Subject"] == "Re: Lunch?"
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert reply["References"] == original["Message-ID"]
    assert reply["To"].addresses[0].addr_spec == ALICE and reply["Cc"] is None
    text = reply.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Yes!\n\nOn ")
    assert re.search(r"On .+ 2026 .+, Alice wrote:\n> Shall we\?\n>\n> At noon\.", text), text
    assert re.search(r"^\s*1 [N ][F ]A", people["bob"].out("list"), re.M)  # \Answered on the original

    # A reply to the reply keeps the thread: References grows, Re: is not doubled.
    people["alice"].run("reply", "1", input=b"Great.\n")
    second = newest(mx, BOB, count=2)
    assert second["Subject"] == "Re: Lunch?"
    assert second["References"].split() == [original["Message-ID"], reply["Message-ID"]]


def test_reply_all_copies_everyone_but_me(mx, people):
    people["alice"].run("send", "--to", f"{BOB}, {CAROL}", "--cc", "Dave <dave@example.org>", "-s", "Plans",
                        input=b"Ideas?\n", check=False)  # dave is remote: submission queues or refuses him
    newest(mx, CAROL)
    people["carol"].run("reply", "--all", "1", input=b"Mine.\n", check=False)
    reply = newest(mx, ALICE)
    assert [a.addr_spec for a in reply["To"].addresses] == [ALICE]
    cc = sorted(a.addr_spec for a in reply["Cc"].addresses)
    assert cc == sorted([BOB, "dave@example.org"])
    assert reply["Subject"] == "Re: Plans"


def test_forward_inline_and_as_attachment(mx, people, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk\n")
    people["alice"].run("send", "--to", BOB, "-s", "Minutes", "-a", str(notes), input=b"The minutes.\n")
    original = newest(mx, BOB)

    people["bob"].run("forward", "1", "--to", CAROL, input=b"FYI\n")
    inline = newest(mx, CAROL)
    assert inline["Subject"] == "Fwd: Minutes"
    assert original["Message-ID"] in inline["References"]
    text = inline.get_body(("plain",)).get_content()
    assert "FYI" in text and "Forwarded message" in text and "Subject: Minutes" in text and "The minutes." in text
    assert [p.get_filename() for p in inline.iter_attachments()] == ["notes.txt"]

    people["bob"].run("forward", "--attach", "1", "--to", CAROL, input=b"see attached\n")
    enclosed = newest(mx, CAROL, count=2)
    assert enclosed["Subject"] == "Fwd: Minutes"
    inner = [p for p in enclosed.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert len(inner) == 1
    assert inner[0].get_content()["Message-ID"] == original["Message-ID"]


def test_save_to_mailbox_eml_and_attachments(mx, people, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(1000))
    people["alice"].run("send", "--to", BOB, "-s", "Photo", "-a", str(photo), input=b"Look.\n")
    newest(mx, BOB)
    bob = people["bob"]
    bob.run("save", "1", "--to-mailbox", "Keep/2026")  # created on TRYCREATE
    assert len(mx.uids(BOB, "Keep/2026")) == 1
    eml = tmp_path / "photo.eml"
    bob.run("save", "1", "--eml", str(eml))
    assert eml.read_bytes() == mx.export(BOB, "INBOX", 1)
    out_dir = tmp_path / "attachments"
    bob.run("save", "1", "--attachments", str(out_dir))
    bob.run("save", "1", "--attachments", str(out_dir))
    assert (out_dir / "photo.png").read_bytes() == photo.read_bytes()
    assert (out_dir / "photo (2).png").read_bytes() == photo.read_bytes()  # never overwritten


def test_draft_is_saved_then_resumed_and_sent(mx, people, tmp_path):
    """`--draft` files the message in Drafts (\\Draft, Bcc kept in the person's own copy) instead of sending;
    `send --resume UID` continues it (recipients, subject, text and attachments kept; new text, recipients and
    attachments given on the command line win or add), sends it and removes the old draft. A reply saved as
    a draft keeps its threading through the resume."""
    notes = tmp_path / "notes.txt"
    notes.write_text("the agenda\n")
    alice = people["alice"]
    out = alice.out("send", "--draft", "--to", BOB, "--bcc", CAROL, "-s", "Agenda", "-a", str(notes),
                    input=b"First half of the text.\n")
    assert "saved as a draft in Drafts" in out
    assert mx.uids(BOB) == [] and mx.uids(CAROL) == []  # nothing went out
    [uid] = mx.uids(ALICE, "Drafts")
    saved = parse(mx.export(ALICE, "Drafts", uid))
    assert saved["Subject"] == "Agenda" and saved["Bcc"] is not None
    imap = imaplib.IMAP4("127.0.0.1", mx.imap_port)
    context = ssl.create_default_context(cafile=str(mx.workdir / "cert.pem"))
    context.check_hostname = False
    imap.starttls(context)
    imap.login(ALICE, PASSWORD)
    imap.select("Drafts", readonly=True)
    flags = imap.uid("FETCH", str(uid), "(FLAGS)")[1][0].decode()
    imap.logout()
    assert "\\Draft" in flags, flags

    # Resumed, with the text replaced and an attachment added, and sent.
    more = tmp_path / "more.txt"
    more.write_text("and more\n")
    alice.run("send", "--resume", str(uid), "-a", str(more), input=b"The whole text now.\n")
    sent = newest(mx, BOB)
    assert sent["Subject"] == "Agenda"
    assert sent["Bcc"] is None  # the Bcc was kept in the draft, and is delivered but not shown
    assert newest(mx, CAROL)["Subject"] == "Agenda"
    assert sent.get_body(("plain",)).get_content().replace("\r\n", "\n") == "The whole text now.\n"
    assert sorted(p.get_filename() for p in sent.iter_attachments()) == ["more.txt", "notes.txt"]
    assert mx.uids(ALICE, "Drafts") == []  # the old draft went

    # A reply kept as a draft, resumed without new text (stdin is not a terminal: the text given wins, so
    # give the draft's own), keeps In-Reply-To.
    people["bob"].run("reply", "--draft", "1", input=b"Looks good.\n")
    [reply_uid] = mx.uids(BOB, "Drafts")
    assert mx.uids(ALICE) == []
    people["bob"].run("send", "--resume", str(reply_uid), "-s", "Re: Agenda (final)", input=b"Looks good, sent.\n")
    reply = newest(mx, ALICE)
    assert reply["Subject"] == "Re: Agenda (final)"
    assert reply["In-Reply-To"] == sent["Message-ID"]
    assert mx.uids(BOB, "Drafts") == []


def test_move_delete_and_flag(mx, people):
    for n in range(3):
        people["alice"].run("send", "--to", BOB, "-s", f"item {n}", input=b"x\n")
    wait_for(lambda: len(mx.uids(BOB)) == 3, what="three messages")
    bob = people["bob"]
    bob.run("move", "1", "--to", "Archive")
    assert mx.uids(BOB) == [2, 3] and len(mx.uids(BOB, "Archive")) == 1

    bob.run("delete", "2")
    assert mx.uids(BOB) == [3] and len(mx.uids(BOB, "Trash")) == 1
    bob.run("delete", "-m", "Trash", str(mx.uids(BOB, "Trash")[0]))  # in Trash: gone for good
    assert mx.uids(BOB, "Trash") == []
    bob.run("delete", "--expunge", "3")
    assert mx.uids(BOB) == []

    uid = mx.uids(BOB, "Archive")[0]
    shown = bob.out("flag", "-m", "Archive", str(uid), "--set", "flagged", "--set", "seen", "--set", "$Important")
    assert re.search(rf"^\s*{uid}  F", shown, re.M), shown
    shown = bob.out("flag", "-m", "Archive", str(uid), "--clear", "\\Seen")
    assert re.search(rf"^\s*{uid} NF", shown, re.M), shown
    assert bob.run("flag", "-m", "Archive", str(uid), "--set", "bad(flag", check=False).returncode == 2


def test_search_by_sender_subject_text_and_date(mx, people):
    people["alice"].run("send", "--to", BOB, "-s", "Invoice 42", input=b"Please pay.\n")
    people["carol"].run("send", "--to", BOB, "-s", "Holiday photos", input=b"From the beach, with an invoice.\n")
    wait_for(lambda: len(mx.uids(BOB)) == 2, what="two messages")
    bob = people["bob"]
    assert bob.uids("search", "--from", "carol") == [2]
    assert bob.uids("search", "--subject", "invoice") == [1]
    assert bob.uids("search", "--text", "invoice") == [2, 1]
    assert bob.uids("search", "--since", "2000-01-01", "--from", "alice") == [1]
    assert bob.uids("search", "--before", "2000-01-01") == []
    assert bob.run("search", "--since", "yesterday", check=False).returncode == 2
    people["carol"].run("send", "--to", BOB, "-s", "Grüße aus Köln", input="Schöne Grüße\n".encode())
    wait_for(lambda: len(mx.uids(BOB)) == 3, what="three messages")
    assert bob.uids("search", "--subject", "grüße") == [3]  # CHARSET UTF-8, the string as a literal


@pytest.mark.parametrize("args", [
    ("-s", "Hello\r\nBcc: victim@example.org"),
    ("-s", "Hello\nX-Injected: yes"),
    ("-s", "ok", "--to", f"{BOB}\r\nBcc: victim@example.org"),
    ("-s", "ok", "--cc", f"{CAROL}\nSubject: forged"),
])
def test_header_injection_through_subject_or_addresses_is_refused(mx, people, args):
    args = list(args)
    if "--to" not in args:
        args += ["--to", BOB]
    result = people["alice"].run("send", *args, input=b"body\n", check=False)
    assert result.returncode == 2
    assert b"header injection" in result.stderr
    time.sleep(0.5)
    assert mx.uids(BOB) == [] and mx.uids(CAROL) == []


def test_password_sources_and_a_wrong_password(mx, people, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    (tmp_path / "cmd").mkdir()
    agent = agent_for(mx, BOB, tmp_path / "cmd", extra=f'password_command = "cat {secret}"')
    assert "0 messages" in Agent(agent.account, password="wrong").out("list")  # the command wins over the env
    bad = Agent(people["bob"].account, password="wrong").run("list", check=False)
    assert bad.returncode == 1 and b"login failed" in bad.stderr.lower()
    assert PASSWORD.encode() not in people["bob"].account.read_bytes()  # the file names a source, not the secret
    wrong = Agent(people["alice"].account, password="wrong").run("send", "--to", BOB, "-s", "x", input=b"x\n",
                                                                  check=False)
    assert wrong.returncode == 1 and re.search(rb"refused bob@example.test: .*5\d\d", wrong.stdout), wrong.stdout
    missing = people["bob"].run("read", "77", check=False)
    assert missing.returncode == 1 and b"no message with UID 77 in INBOX" in missing.stderr
    refused = write_account(tmp_path / "inline.toml", BOB, extra='password = "x"')
    result = Agent(refused).run("list", check=False)
    assert result.returncode == 2 and b"password_command" in result.stderr


def test_tls_is_verified_and_plaintext_only_to_loopback(mx, people, tmp_path):
    unverified = write_account(tmp_path / "nocafile.toml", BOB,
                               imap={"host": "127.0.0.1", "port": mx.imap_port, "tls": "starttls"})
    result = Agent(unverified).run("list", check=False)
    assert result.returncode == 1 and b"certificate verify failed" in result.stderr
    remote = write_account(tmp_path / "remote.toml", BOB, imap={"host": "192.0.2.1", "port": 143, "tls": "plain"})
    result = Agent(remote).run("list", check=False)
    assert result.returncode == 1 and b"only loopback may go without TLS" in result.stderr
    implicit = write_account(tmp_path / "implicit.toml", BOB,
                             imap={"host": "localhost", "port": mx.imaps_port, "tls": "implicit"},
                             ca_file=str(mx.workdir / "cert.pem"))
    assert "0 messages" in Agent(implicit).out("list")
    named = write_account(tmp_path / "named.toml", BOB,
                          imap={"host": "127.0.0.1", "port": mx.imap_port, "tls_name": "mx.example.test"},
                          ca_file=str(mx.workdir / "cert.pem"))
    assert "0 messages" in Agent(named).out("list")
    misnamed = write_account(tmp_path / "misnamed.toml", BOB,
                             imap={"host": "127.0.0.1", "port": mx.imap_port, "tls_name": "mx.example.org"},
                             ca_file=str(mx.workdir / "cert.pem"))
    result = Agent(misnamed).run("list", check=False)
    assert result.returncode == 1 and b"certificate verify failed" in result.stderr


# ---- interop: Dovecot (IMAP) and Postfix (SMTP) ---------------------------------------------------------------

@pytest.fixture
def dovecot():
    if not dovecot_available():
        pytest.skip("dovecot is not installed (scripts/install-deps.sh installs it)")
    server = Dovecot({"bob@dovecot.test": PASSWORD}).start()
    yield server
    server.stop()


def dovecot_append(server, subject, body="text\r\n", sender="Alice <alice@dovecot.test>", extra=""):
    with imaplib.IMAP4(server.host, server.port) as client:
        client.login("bob@dovecot.test", PASSWORD)
        message = (f"From: {sender}\r\nTo: bob@dovecot.test\r\nSubject: {subject}\r\n"
                   f"Date: Sun, 29 Nov 2026 20:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@dovecot.test>\r\n"
                   f"{extra}\r\n{body}").encode()
        assert client.append("INBOX", None, None, message)[0] == "OK"


def dovecot_flags(server, mailbox="INBOX"):
    with imaplib.IMAP4(server.host, server.port) as client:
        client.login("bob@dovecot.test", PASSWORD)
        client.select(f'"{mailbox}"')
        typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
        return {int(re.search(rb"UID (\d+)", d).group(1)): d for d in data if d}


@host_network  # system Dovecot and Postfix peers
def test_interop_dovecot_imap(dovecot, tmp_path):
    multipart = ('MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n', "--b\r\nContent-Type: text/plain\r\n\r\n"
                 "see the file\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
                 "filename*=UTF-8''r%C3%A9sum%C3%A9.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n")
    dovecot_append(dovecot, "first note")
    dovecot_append(dovecot, "with a file", body=multipart[1], extra=multipart[0])
    dovecot_append(dovecot, "third note", sender="Carol <carol@dovecot.test>")
    bob = Agent(write_account(tmp_path / "dovecot.toml", "bob@dovecot.test",
                              imap={"host": dovecot.host, "port": dovecot.port, "tls": "plain"}))
    listing = bob.out("list")
    assert bob.uids() == [3, 2, 1] and re.search(r"^\s*2 N.*with a file @$", listing, re.M), listing
    shown = bob.out("read", "2")
    assert "see the file" in shown and "1. résumé.bin (application/octet-stream, 4 bytes)" in shown
    bob.run("save", "2", "--attachments", str(tmp_path / "files"))
    assert (tmp_path / "files" / "résumé.bin").read_bytes() == b"\x00\x01\x02\x03"
    assert bob.uids("search", "--from", "carol") == [3]
    assert bob.uids("search", "--text", "see the file") == [2]
    bob.run("flag", "1", "--set", "flagged")
    assert b"\\Flagged" in dovecot_flags(dovecot)[1]
    bob.run("move", "3", "--to", "Archive")  # Dovecot answers TRYCREATE: the client creates it
    assert list(dovecot_flags(dovecot, "Archive")) == [1]
    bob.run("delete", "1")  # no \Trash mailbox announced: "Trash", created
    assert list(dovecot_flags(dovecot, "Trash")) == [1]
    assert list(dovecot_flags(dovecot)) == [2]
    assert "Archive" in bob.out("mailboxes")


@pytest.fixture
def postfix():
    if not postfix_available():
        pytest.skip("postfix needs root and the postfix package")
    root = instance_dir()
    server = Postfix(root, host="127.0.0.4", port=free_port("127.0.0.4"), hostname="mx.postfix.test",
                     domains=["postfix.test"], users=["dave@postfix.test"])
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@host_network
def test_interop_postfix_smtp(postfix, tmp_path):
    attachment = tmp_path / "table.csv"
    attachment.write_text("a,b\n1,2\n")
    alice = Agent(write_account(tmp_path / "postfix.toml", "Alice <alice@elsewhere.test>",
                                smtp={"host": postfix.host, "port": postfix.port, "tls": "plain", "auth": False}))
    out = alice.out("send", "--to", "dave@postfix.test", "-s", "Über Postfix", "-a", str(attachment),
                    input="Grüße\n".encode())
    assert "accepted dave@postfix.test" in out
    messages = postfix.messages("dave@postfix.test", wait=20)
    assert len(messages) == 1, postfix.log()
    got = parse(messages[0])
    assert got["Subject"] == "Über Postfix"
    assert got.get_body(("plain",)).get_content().rstrip() == "Grüße"
    assert [p.get_content_type() for p in got.iter_attachments()] == ["text/csv"]


# ---- the round trip: A's submission -> SMTP -> B, read and answered over IMAP ------------------------------------

def test_round_trip_between_two_magpied(tmp_path):
    port_a, port_b = free_port(), free_port()
    queue = {"poll_interval": 1, "retry_intervals": [2], "idle_keep": 1, "connect_timeout": 5, "command_timeout": 20}
    servers = {}
    try:
        for name, domain, port, peer_port in (("a", "a.test", port_a, port_b), ("b", "b.test", port_b, port_a)):
            workdir = tmp_path / name
            workdir.mkdir()
            server = Magpied(workdir, hostname=f"mx.{domain}", smtp_port=port,
                             sections={**SECTIONS, "queue": queue,
                                       "queue.smart_host": {"host": "127.0.0.1", "port": peer_port}})
            server.magpie("domain", "add", domain)
            server.add_user(("alice@" if name == "a" else "bob@") + domain)
            servers[name] = server.start()
        a, b = servers["a"], servers["b"]
        alice = agent_for(a, "alice@a.test", tmp_path)
        bob = agent_for(b, "bob@b.test", tmp_path)

        assert "accepted bob@b.test" in alice.out("send", "--to", "Bob <bob@b.test>", "-s", "Across",
                                                  input=b"Hello from A.\n")
        wait_for(lambda: b.uids("bob@b.test"), timeout=30, what="delivery from A to B")
        shown = bob.out("read", "1")
        assert "Subject: Across" in shown and "Hello from A." in shown and "alice@a.test" in shown

        bob.run("reply", "1", input=b"Hello back from B.\n")
        wait_for(lambda: a.uids("alice@a.test"), timeout=30, what="the reply from B to A")
        assert re.search(r"^\s*1 N.*Re: Across$", alice.out("list"), re.M)
        reply = alice.out("read", "1")
        assert "Hello back from B." in reply and "> Hello from A." in reply
        original = parse(b.export("bob@b.test", "INBOX", 1))
        stored = parse(a.export("alice@a.test", "INBOX", 1))
        assert stored["In-Reply-To"] == original["Message-ID"]
    finally:
        for server in servers.values():
            server.stop()


def test_body_from_the_editor_when_standard_input_is_a_terminal(mx, people, tmp_path):
    import pty
    editor = tmp_path / "editor.sh"
    # The "person": writes a line above what the editor shows (the quote, for a reply), keeps the rest.
    editor.write_text('#!/bin/sh\n{ printf "Written in the editor.\\n"; cat "$1"; } > "$1.new" && mv "$1.new" "$1"\n')
    editor.chmod(0o755)
    people["alice"].run("send", "--to", BOB, "-s", "Question", input=b"Coffee?\n")
    newest(mx, BOB)
    controller, terminal = pty.openpty()
    try:
        environment = dict(os.environ, MAGPIE_TEST_PASSWORD=PASSWORD, EDITOR=str(editor))
        result = subprocess.run([str(MAGPIE), "mail", "--account", str(people["bob"].account), "reply", "1"],
                                stdin=terminal, capture_output=True, timeout=60, env=environment)
    finally:
        os.close(controller)
        os.close(terminal)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    text = newest(mx, ALICE).get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Written in the editor.\n") and "Bob" not in text and "> Coffee?" in text


def test_password_prompt_on_the_terminal_does_not_echo(mx, people, tmp_path):
    import fcntl
    import pty
    import select
    import termios
    account = write_account(tmp_path / "prompt.toml", BOB,
                            imap={"host": "127.0.0.1", "port": mx.imap_port, "tls": "starttls"},
                            ca_file=str(mx.workdir / "cert.pem"))
    controller, terminal = pty.openpty()

    def take_terminal():  # the child's session gets the pty as its controlling terminal: /dev/tty
        os.setsid()
        fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([str(MAGPIE), "mail", "--account", str(account), "list"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=take_terminal,
                            pass_fds=(terminal,))
    seen = b""
    try:
        deadline = time.time() + 20
        while b"Password for bob@example.test: " not in seen and time.time() < deadline:
            if select.select([controller], [], [], 0.5)[0]:
                seen += os.read(controller, 1024)
        assert b"Password for" in seen
        time.sleep(0.2)  # echo is off once the prompt is out; TCSAFLUSH drops earlier typing
        os.write(controller, PASSWORD.encode() + b"\n")
        out, err = proc.communicate(timeout=30)
        while select.select([controller], [], [], 0.2)[0]:
            try:
                seen += os.read(controller, 1024)
            except OSError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert b"0 messages" in out
    assert PASSWORD.encode() not in seen  # never echoed
