"""Faults other mail servers were reported for, tried against magpied's SMTP: a command line as long as the
extensions magpied offers allow (RFC 3461 4: RCPT grows by 500 octets for NOTIFY/ORCPT; RFC 4954 5: MAIL by
500 for AUTH=) and the AUTH= parameter of MAIL on submission, which Sendmail and Exchange send."""
import smtplib

from conftest import client_tls_context, smtp_dialogue

ALICE = "alice@example.test"


def test_rcpt_with_a_long_address_notify_and_orcpt_is_read(server):
    """A 254-octet address (RFC 5321 4.5.3.1.3 allows 256 with the brackets) with NOTIFY and an ORCPT naming it
    makes a RCPT line of about 570 octets, above RFC 5321's base 512, which DSN raises by 500 (RFC 3461 4).
    It was refused "500 5.5.2 line too long"; now the recipient itself is judged (here: not ours)."""
    address = "l" * 64 + "@" + ("d" * 61 + ".") * 2 + "d" * 52 + ".example.test"
    assert len(address) == 254
    mail = f"MAIL FROM:<{address}> RET=HDRS ENVID={'e' * 100} SIZE=100\r\n".encode()
    rcpt = f"RCPT TO:<{address}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;{address}\r\n".encode()
    assert 512 < len(rcpt) < 1012
    said = smtp_dialogue(server.smtp_port, [b"EHLO client.test\r\n", mail, rcpt, b"QUIT\r\n"])
    replies = [line for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    assert replies[2].startswith(b"250 2.1.0"), said  # after the greeting and EHLO
    # A decision about the recipient (no such domain here), not about the line.
    assert replies[3][:3] in (b"550", b"554") and b"too long" not in said, said


def test_submission_accepts_the_auth_parameter_of_mail(make_server):
    server = make_server(sections={"submission": {"listen": ["127.0.0.1:0"]}, "queue": {"enabled": False}})
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as client:
        client.ehlo("client.test")
        client.starttls(context=client_tls_context())
        client.ehlo("client.test")
        client.login(ALICE, "correct horse battery staple")
        for value in ("<>", "alice+40example.test"):
            code, text = client.mail(ALICE, [f"AUTH={value}"])
            assert code == 250, text
            client.rset()
        message = f"From: {ALICE}\r\nTo: bob@example.test\r\nSubject: auth param\r\n\r\nhi\r\n"
        client.sendmail(ALICE, ["bob@example.test"], message, mail_options=["AUTH=<>"])
    assert b"Subject: auth param" in server.export("bob@example.test", "INBOX", 1)


def test_a_quoted_local_part_reaches_the_same_mailbox(server):
    """RCPT TO:<"alice"@example.test> names alice's mailbox (RFC 5321 4.1.2: the quoted form of a local part
    that needs no quoting is the same local part; Postfix delivers it). It was refused 550 5.1.1 User unknown.
    A quoted content no account can have ("a b") is still an unknown user, and so "postmaster" quoted is the
    postmaster."""
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO client.test\r\n", b"MAIL FROM:<sender@remote.example>\r\n", b'RCPT TO:<"alice"@example.test>\r\n',
        b'RCPT TO:<"Al\\ice"@Example.Test>\r\n', b'RCPT TO:<"a b"@example.test>\r\n',
        b'RCPT TO:<"postmaster"@example.test>\r\n', b"DATA\r\n",
        b"From: sender@remote.example\r\nSubject: quoted rcpt\r\n\r\nhi\r\n.\r\n", b"QUIT\r\n"])
    replies = [line for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    assert replies[3].startswith(b"250 2.1.5") and replies[4].startswith(b"250 2.1.5"), said
    assert replies[5].startswith(b"550 5.1.1"), said
    assert replies[6].startswith(b"250 2.1.5"), said
    assert replies[8].startswith(b"250 2.0.0"), said
    assert b"Subject: quoted rcpt" in server.export(ALICE, "INBOX", 1)
