"""Mail clients that set themselves up (issue 18): magpied's HTTP service answers Thunderbird's autoconfig,
Outlook's autodiscover (POX and JSON v2) and an Apple profile. The Thunderbird answer is checked field by field
against the config-v1.1 format Mozilla documents; then a client reads each answer and logs in to IMAP and
submission with exactly what it was told (host, port, socket type, login name), verifying the server's
certificate for the host it was told."""
import imaplib
import plistlib
import smtplib
import ssl
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from conftest import DOMAIN, PASSWORD

ALICE = f"alice@{DOMAIN}"
HOST = "localhost"  # the test certificate's name, so clients can verify it as real ones would

# https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
AUTHENTICATIONS = {"password-cleartext", "password-encrypted", "NTLM", "GSSAPI", "client-IP-address",
                   "TLS-client-cert", "OAuth2", "none"}
SERVER_REQUIRED = ["hostname", "port", "socketType", "username", "authentication"]
SERVER_OPTIONAL = {"password", "restriction", "addThisServer", "useGlobalPreferredServer", "pop3", "leaveMessagesOnServer",
                   "downloadOnBiff", "daysToLeaveMessagesOnServer", "checkInterval", "deleteMailLeftOnServer"}
PROVIDER_CHILDREN = {"domain", "displayName", "displayShortName", "incomingServer", "outgoingServer",
                     "documentation", "instruction", "enable", "inputField"}


@pytest.fixture
def server(make_server):
    return make_server(hostname=HOST, sections={
        "submission": {"listen": ["127.0.0.1:0"], "listen_tls": ["127.0.0.1:0"]},
        "http": {"listen": ["127.0.0.1:0"]}, "queue": {"enabled": False}})


def fetch(server, path, method="GET", body=None, host=None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.ports['http']}{path}", data=body, method=method)
    if host:
        request.add_header("Host", host)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers.get("Content-Type"), response.read()


def verified_context(server):
    context = ssl.create_default_context(cafile=str(server.workdir / "cert.pem"))
    return context


def check_thunderbird_schema(document):
    """Every element and value as Mozilla's config-v1.1 documents them; returns the servers found."""
    root = ET.fromstring(document)
    assert root.tag == "clientConfig" and root.attrib == {"version": "1.1"}
    providers = list(root)
    assert [p.tag for p in providers] == ["emailProvider"]
    provider = providers[0]
    assert provider.attrib.get("id")
    assert {child.tag for child in provider} <= PROVIDER_CHILDREN
    assert [d.text for d in provider.findall("domain")] == [DOMAIN]
    assert provider.findtext("displayName") and provider.findtext("displayShortName")
    servers = []
    for element, types in (("incomingServer", {"imap", "pop3"}), ("outgoingServer", {"smtp"})):
        found = provider.findall(element)
        assert found, f"no {element}"
        for entry in found:
            assert set(entry.attrib) == {"type"} and entry.attrib["type"] in types
            tags = [child.tag for child in entry]
            for required in SERVER_REQUIRED:
                assert required in tags, (element, required)
            for tag in tags:
                assert tag in SERVER_REQUIRED or tag in SERVER_OPTIONAL, (element, tag)
            for single in ("hostname", "port", "socketType", "username"):
                assert tags.count(single) == 1, (element, single)
            port = int(entry.findtext("port"))
            assert 1 <= port <= 65535
            assert entry.findtext("socketType") in SOCKET_TYPES
            assert all(a.text in AUTHENTICATIONS for a in entry.findall("authentication"))
            servers.append((element, entry.attrib["type"], entry.findtext("hostname"), port,
                            entry.findtext("socketType"), entry.findtext("username")))
    return servers


def login_imap(server, host, port, socket_type, username):
    assert host == HOST
    if socket_type == "SSL":
        client = imaplib.IMAP4_SSL(host, port, ssl_context=verified_context(server), timeout=30)
    else:
        assert socket_type == "STARTTLS"
        client = imaplib.IMAP4(host, port, timeout=30)
        client.starttls(ssl_context=verified_context(server))
    try:
        assert client.login(username, PASSWORD)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def send_submission(server, host, port, socket_type, username, subject):
    assert host == HOST
    if socket_type == "SSL":
        client = smtplib.SMTP_SSL(host, port, context=verified_context(server), timeout=30)
    else:
        assert socket_type == "STARTTLS"
        client = smtplib.SMTP(host, port, timeout=30)
        client.starttls(context=verified_context(server))
    with client:
        client.login(username, PASSWORD)
        client.sendmail(ALICE, [f"bob@{DOMAIN}"],
                        f"From: {ALICE}\r\nTo: bob@{DOMAIN}\r\nSubject: {subject}\r\n\r\nhi\r\n".encode())


def test_thunderbird_answer_matches_the_documented_format_and_the_listeners(server):
    status, content_type, body = fetch(server, f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={ALICE}")
    assert status == 200 and content_type.startswith("application/xml")
    servers = check_thunderbird_schema(body)
    p = server.ports
    assert servers == [
        ("incomingServer", "imap", HOST, p["imaps"], "SSL", ALICE),
        ("incomingServer", "imap", HOST, p["imap"], "STARTTLS", ALICE),
        ("outgoingServer", "smtp", HOST, p["submissions"], "SSL", ALICE),
        ("outgoingServer", "smtp", HOST, p["submission"], "STARTTLS", ALICE)]


def test_thunderbird_client_logs_in_with_exactly_what_it_was_told(server):
    _, _, body = fetch(server, f"/mail/config-v1.1.xml?emailaddress={ALICE}", host=f"autoconfig.{DOMAIN}")
    for element, kind, host, port, socket_type, username in check_thunderbird_schema(body):
        if kind == "imap":
            login_imap(server, host, port, socket_type, username)
        else:
            send_submission(server, host, port, socket_type, username, f"via {socket_type} {port}")
    assert len(server.uids(f"bob@{DOMAIN}")) == 2


def test_without_the_address_thunderbird_gets_its_placeholder(server):
    _, _, body = fetch(server, "/mail/config-v1.1.xml", host=f"autoconfig.{DOMAIN}")
    servers = check_thunderbird_schema(body)
    assert {s[5] for s in servers} == {"%EMAILADDRESS%"}
    # Thunderbird puts the typed address in; so does this client.
    element, kind, host, port, socket_type, _ = servers[0]
    login_imap(server, host, port, socket_type, ALICE)


def test_outlook_pox_and_json_lead_to_a_working_login(server):
    status, content_type, body = fetch(server, f"/autodiscover/autodiscover.json?Email={ALICE}&Protocol=AutodiscoverV1")
    import json
    redirect = json.loads(body)
    assert redirect == {"Protocol": "AutodiscoverV1", "Url": f"https://{HOST}/autodiscover/autodiscover.xml"}
    request = (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/'
               f'autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{ALICE}</EMailAddress>'
               '<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/'
               '2006a</AcceptableResponseSchema></Request></Autodiscover>').encode()
    status, content_type, body = fetch(server, "/autodiscover/autodiscover.xml", method="POST", body=request,
                                       host=f"autodiscover.{DOMAIN}")
    assert status == 200
    ns = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    account = ET.fromstring(body).find("r:Response/r:Account", ns)
    assert account.findtext("r:AccountType", namespaces=ns) == "email"
    assert account.findtext("r:Action", namespaces=ns) == "settings"
    told = {}
    for protocol in account.findall("r:Protocol", ns):
        encryption = protocol.findtext("r:Encryption", namespaces=ns)
        told[protocol.findtext("r:Type", namespaces=ns)] = (
            protocol.findtext("r:Server", namespaces=ns), int(protocol.findtext("r:Port", namespaces=ns)),
            {"SSL": "SSL", "TLS": "STARTTLS"}[encryption], protocol.findtext("r:LoginName", namespaces=ns))
    assert told["IMAP"] == (HOST, server.ports["imaps"], "SSL", ALICE)
    assert told["SMTP"] == (HOST, server.ports["submissions"], "SSL", ALICE)
    login_imap(server, *told["IMAP"])
    send_submission(server, *told["SMTP"], "via autodiscover")


def test_apple_profile_parses_as_a_plist_and_logs_in(server):
    status, content_type, body = fetch(server, f"/apple/mobileconfig?emailaddress={ALICE}")
    assert status == 200 and content_type == "application/x-apple-aspen-config"
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed" and mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == ALICE
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is True
    assert mail["IncomingMailServerPortNumber"] == server.ports["imaps"]
    login_imap(server, mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"], "SSL",
               mail["IncomingMailServerUsername"])
    send_submission(server, mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"], "SSL",
                    mail["OutgoingMailServerUsername"], "via profile")
    anonymous = plistlib.loads(fetch(server, "/apple/mobileconfig")[2])  # one local domain: no hint needed
    assert "EmailAddress" not in anonymous["PayloadContent"][0]


def test_other_domains_are_not_answered(server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(server, "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=eve@elsewhere.test")
    assert refused.value.code == 404


class PortForward:
    """A NAT's port forward on loopback: connections to 127.0.0.1:port are relayed to the target port, which
    is set once the server has bound it."""

    def __init__(self):
        import socket
        import threading
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = None
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import socket
        import threading
        while True:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return
            outside = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(source, sink):
        import socket
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.listener.close()


def test_behind_nat_clients_are_told_the_public_host_and_ports_and_log_in_through_them(make_server):
    """[autoconfig] hostname and *_port: the server knows itself as mx.internal.test on ports picked at start,
    clients must use localhost on the forwarded ports; 0 offers a kind to nobody."""
    imaps, submission = PortForward(), PortForward()
    try:
        server = make_server(hostname="mx.internal.test", sections={
            "submission": {"listen": ["127.0.0.1:0"], "listen_tls": ["127.0.0.1:0"]},
            "http": {"listen": ["127.0.0.1:0"]}, "queue": {"enabled": False},
            "autoconfig": {"hostname": HOST, "imaps_port": imaps.port, "imap_port": 0,
                           "submissions_port": 0, "submission_port": submission.port}})
        imaps.target, submission.target = server.ports["imaps"], server.ports["submission"]
        _, _, body = fetch(server, f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={ALICE}")
        servers = check_thunderbird_schema(body)
        assert servers == [("incomingServer", "imap", HOST, imaps.port, "SSL", ALICE),
                           ("outgoingServer", "smtp", HOST, submission.port, "STARTTLS", ALICE)]
        login_imap(server, HOST, imaps.port, "SSL", ALICE)
        send_submission(server, HOST, submission.port, "STARTTLS", ALICE, "through the NAT")
        assert len(server.uids(f"bob@{DOMAIN}")) == 1
        # Outlook and Apple are told the same.
        _, _, pox = fetch(server, "/autodiscover/autodiscover.xml", method="POST",
                          body=f"<Autodiscover><Request><EMailAddress>{ALICE}</EMailAddress></Request></Autodiscover>"
                          .encode())
        assert f"<Server>{HOST}</Server>".encode() in pox and f"<Port>{imaps.port}</Port>".encode() in pox
        assert b"mx.internal.test" not in pox
        _, _, profile = fetch(server, f"/apple/mobileconfig?emailaddress={ALICE}")
        mail = plistlib.loads(profile)["PayloadContent"][0]
        assert mail["IncomingMailServerHostName"] == HOST and mail["OutgoingMailServerPortNumber"] == submission.port
    finally:
        imaps.close()
        submission.close()
