"""Mail for the isolation tests (test_isolation.py, test_jmap_isolation.py): a mailbox filled before the load
starts, and deliveries made while it runs, each of which must be acknowledged. Latencies are returned for
printing, never asserted (tests never assert timings); socket timeouts only guard against hangs."""
import smtplib
import statistics
import time

SENDER = "s@remote.example"


def message(i, to, size=2000, tag="load"):
    """A plain message of about `size` bytes, Subject "load <i>", Message-ID <TAGi@remote.example>."""
    filler = ("lorem ipsum dolor sit amet %d\r\n" % i) * (size // 30)
    return (f"From: {SENDER}\r\nTo: {to}\r\nSubject: load {i}\r\n"
            f"Message-ID: <{tag}{i}@remote.example>\r\n\r\n{filler}\r\n").encode()


def fill(server, to, count=300, tag="load"):
    """Delivers messages 0 to count-1 to `to` over one SMTP session, before any load starts."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        for i in range(count):
            client.sendmail(SENDER, [to], message(i, to, tag=tag))


def deliver_timed(server, rcpt, count=40, header_to=None, tag="load", timeout=120):
    """Delivers `count` messages (1000, 1001, ...) to `rcpt` over one SMTP session, asserting each MAIL, RCPT
    and DATA is answered 250; returns each transaction's seconds. `header_to` is the To: field (default rcpt)."""
    latencies = []
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=timeout) as client:
        client.ehlo("load.example")
        for i in range(count):
            start = time.monotonic()
            code, _ = client.mail(SENDER)
            assert code == 250
            code, _ = client.rcpt(rcpt)
            assert code == 250
            code, _ = client.data(message(1000 + i, header_to or rcpt, tag=tag))
            assert code == 250, f"delivery {i} answered {code}"
            latencies.append(time.monotonic() - start)
    return latencies


def summary(latencies):
    return (f"{len(latencies)} deliveries under load, median {statistics.median(latencies) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms")
