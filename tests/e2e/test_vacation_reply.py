"""VacationResponse (RFC 8621 8) answering mail that arrives on port 25, as RFC 3834 allows: once per sender
per vacation period, never to list mail or automatic mail, sent from <> with Auto-Submitted: auto-replied."""
import smtplib
import time

from conftest import DOMAIN
from peers import free_port
from test_jmap import HTTP_LIMITS, Client, account_id
from test_jmap_identity import call
from test_relay import SevenBitSink

ALICE = f"alice@{DOMAIN}"
CAROL = "carol@remote.test"


def incoming(subject, extra=""):
    return (f"From: Carol <{CAROL}>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@remote.test>\r\n{extra}\r\nHello Alice.\r\n").encode()


def send(server, message, sender=CAROL):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as client:
        client.sendmail(sender, [ALICE], message)


def enable_vacation(server, **extra):
    client = Client(server)
    answer = call(client, "VacationResponse/set", {"accountId": account_id(client), "update": {"singleton": {
        "isEnabled": True, "subject": "Out of office", "textBody": "Back on Monday.", **extra}}})[1]
    assert answer["updated"] == {"singleton": None}, answer


def queue_entries(server):
    """`magpie queue list --all` as [(header line, [recipient lines])]."""
    entries = []
    for line in server.magpie("queue", "list", "--all").stdout.decode().splitlines():
        if line.startswith("    "):
            entries[-1][1].append(line.strip())
        elif line.strip():
            entries.append((line, []))
    return entries


def test_two_messages_from_one_sender_get_one_reply_and_list_mail_none(make_server):
    server = make_server(sections={"http": HTTP_LIMITS, "queue": {"enabled": False}})
    send(server, incoming("Before the vacation"))
    assert queue_entries(server) == []
    enable_vacation(server)
    send(server, incoming("First"))
    send(server, incoming("Second"))
    entries = queue_entries(server)
    assert len(entries) == 1, entries
    header, recipients = entries[0]
    assert "from <>" in header, header
    assert len(recipients) == 1 and recipients[0].startswith(CAROL), recipients
    # List mail, automatic mail and a null reverse path are never answered (RFC 3834 2).
    send(server, incoming("Digest", "Precedence: list\r\n"), sender="dave@remote.test")
    send(server, incoming("Bot", "Auto-Submitted: auto-generated\r\n"), sender="erin@remote.test")
    send(server, incoming("Bounce"), sender="")
    assert len(queue_entries(server)) == 1, queue_entries(server)
    assert len(server.uids(ALICE)) == 6
    # A changed VacationResponse starts a new period: Carol is answered once more.
    enable_vacation(server, subject="Still away")
    send(server, incoming("Third"))
    assert len(queue_entries(server)) == 2


def test_no_reply_outside_the_vacation_dates(make_server):
    server = make_server(sections={"http": HTTP_LIMITS, "queue": {"enabled": False}})
    enable_vacation(server, fromDate="2099-01-01T00:00:00Z")
    send(server, incoming("Too early"))
    enable_vacation(server, fromDate=None, toDate="2000-01-01T00:00:00Z")
    send(server, incoming("Too late"))
    assert queue_entries(server) == []


def test_the_reply_goes_out_from_null_with_auto_submitted(make_server):
    port = free_port()
    sink = SevenBitSink("127.0.0.1", port)
    try:
        server = make_server(sections={"http": HTTP_LIMITS, "queue.smart_host": {"host": "127.0.0.1", "port": port}})
        enable_vacation(server)
        send(server, incoming("Lunch"))
        deadline = time.monotonic() + 20
        while not sink.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(sink.messages) == 1, server.log_text()[-3000:]
        data = sink.messages[0]
        mail_from = [c for c in sink.commands if c.upper().startswith(b"MAIL FROM")]
        rcpt_to = [c for c in sink.commands if c.upper().startswith(b"RCPT TO")]
        assert mail_from[0].upper().startswith(b"MAIL FROM:<>"), mail_from
        assert rcpt_to == [f"RCPT TO:<{CAROL}>\r\n".encode()], rcpt_to
        assert b"\r\nAuto-Submitted: auto-replied\r\n" in data
        assert b"\r\nSubject: Out of office\r\n" in data
        assert b"\r\nIn-Reply-To: <Lunch@remote.test>\r\n" in data
        assert f"\r\nFrom: {ALICE}\r\n".encode() in data or f"\r\nFrom: <{ALICE}>\r\n".encode() in data, data[:600]
        assert b"Back on Monday." in data
    finally:
        sink.close()


def test_vacation_max_senders_forgets_the_oldest_sender(make_server):
    # [smtp] vacation_max_senders = 2: a third sender pushes the first out of the period's record, so the
    # first is answered once more; the two remembered are not.
    server = make_server(smtp_options={"vacation_max_senders": 2},
                         sections={"http": HTTP_LIMITS, "queue": {"enabled": False}})
    enable_vacation(server)
    senders = ["s1@remote.test", "s2@remote.test", "s3@remote.test"]
    for n, sender in enumerate(senders):
        send(server, incoming(f"Hello {n}"), sender=sender)
    assert len(queue_entries(server)) == 3, queue_entries(server)
    send(server, incoming("Again 3"), sender="s3@remote.test")
    send(server, incoming("Again 2"), sender="s2@remote.test")
    assert len(queue_entries(server)) == 3, queue_entries(server)  # both still remembered
    send(server, incoming("Again 1"), sender="s1@remote.test")
    entries = queue_entries(server)
    assert len(entries) == 4, entries
    assert sum(recipients[0].startswith("s1@remote.test") for _, recipients in entries) == 2, entries
    # s1's new reply pushed s2 out: s3 is still remembered, s2 is answered again.
    send(server, incoming("Third time 3"), sender="s3@remote.test")
    assert len(queue_entries(server)) == 4
    send(server, incoming("Third time 2"), sender="s2@remote.test")
    assert len(queue_entries(server)) == 5
