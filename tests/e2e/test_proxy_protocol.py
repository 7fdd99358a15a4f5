"""magpied behind a TCP load balancer: [server] proxy_trusted_networks names the balancers, whose connections
begin with a PROXY protocol header (HAProxy's v1 text, v2 binary); the client address it carries stands for
the connection's in the Received: field, the per-address limits and the logs. Here the "balancer" is this
test on 127.0.0.1 writing the header itself (as HAProxy's send-proxy does), or Debian's HAProxy, and a direct
client connects from 127.0.0.5, an address not trusted, which is served as it is. Last, behind an HTTP
reverse proxy ([http] reverse_proxies): X-Forwarded-For and X-Forwarded-Proto from the proxy's address."""
import base64
import http.client
import json
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import DOMAIN, PASSWORD, client_tls_context, read_line, read_reply, smtp_dialogue

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def behind_balancer(make_server, **kwargs):
    server = make_server(**kwargs)
    server.stop()
    server.config.write_text(server.config.read_text().replace(
        "[server]\n", '[server]\nproxy_trusted_networks = ["127.0.0.1", "2001:db8::/32"]\n', 1))
    return server.start()


def v2_header(source, source_port, destination="127.0.0.1", destination_port=993, command=0x21):
    addresses = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!HH", source_port, destination_port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def test_smtp_through_a_balancer_records_the_client_it_names(make_server):
    server = behind_balancer(make_server)
    with socket.create_connection(("127.0.0.1", server.smtp_port), timeout=30) as sock:
        sock.sendall(f"PROXY TCP4 192.0.2.10 127.0.0.1 40000 {server.smtp_port}\r\n".encode())
        assert read_reply(sock).startswith(b"220 ")
        for command, code in ((b"EHLO client.example\r\n", b"250"), (b"MAIL FROM:<x@remote.example>\r\n", b"250"),
                              (f"RCPT TO:<{ALICE}>\r\n".encode(), b"250"), (b"DATA\r\n", b"354"),
                              (b"Subject: proxied\r\n\r\nhello\r\n.\r\n", b"250"), (b"QUIT\r\n", b"221")):
            sock.sendall(command)
            assert read_reply(sock).startswith(code), command
    message = server.export(ALICE)
    received = message.split(b"\r\n\r\n", 1)[0]
    assert b"[192.0.2.10]" in received, received  # the client's address, not the balancer's
    assert b"127.0.0.1" not in received


def test_a_trusted_connection_without_a_header_is_closed_and_others_are_served(make_server):
    server = behind_balancer(make_server)
    with socket.create_connection(("127.0.0.1", server.smtp_port), timeout=30) as sock:
        sock.sendall(b"EHLO client.example\r\n")  # a balancer that forgot send-proxy
        try:
            assert sock.recv(4096) == b""  # closed, no greeting
        except ConnectionResetError:
            pass  # closed with the command unread: a reset
    assert "no PROXY protocol header" in server.current_log()
    # Not from a balancer: served as it is.
    said = smtp_dialogue(server.smtp_port, [b"EHLO client.example\r\n", b"QUIT\r\n"], source="127.0.0.5")
    assert said.startswith(b"220 ") and b"221" in said


def test_imaps_through_a_balancer_counts_each_client_address_for_the_limits(make_server):
    """v2 before the TLS handshake (HAProxy send-proxy-v2 in TCP mode); [imap] max_connections_per_ip counts the
    clients the headers name, so two clients behind one balancer are two addresses, and one client's second
    connection is over its limit of 1."""
    server = behind_balancer(make_server, imap_options={"max_connections_per_ip": 1})
    context = client_tls_context()

    def imaps(source):
        raw = socket.create_connection(("127.0.0.1", server.imaps_port), timeout=30)
        raw.sendall(v2_header(source, 50000))
        tls = context.wrap_socket(raw, server_hostname=server.hostname)
        return tls, read_line(tls)

    first, said = imaps("192.0.2.20")
    assert said.startswith(b"* OK"), said
    second, said = imaps("192.0.2.21")  # another client: its own address's place
    assert said.startswith(b"* OK"), said
    try:
        third, said = imaps("192.0.2.20")  # the first client again: over its limit
        assert said == b"", said  # an implicit-TLS connection over the limit is closed, as any other
        third.close()
    except (ssl.SSLError, ConnectionError):
        pass  # closed during the handshake
    # A v2 LOCAL header (the balancer's health check) keeps the balancer's own address.
    raw = socket.create_connection(("127.0.0.1", server.imap_port), timeout=30)
    raw.sendall(v2_header("192.0.2.20", 1, command=0x20))
    assert read_line(raw).startswith(b"* OK")
    raw.close()
    for sock in (first, second):
        sock.sendall(b"a LOGOUT\r\n")
        sock.close()
    log = server.current_log()
    assert "127.0.0.1 speaks for 192.0.2.20 (PROXY protocol)" in log
    assert "refusing 192.0.2.20: too many connections" in log


def test_http_request_in_the_same_segment_as_the_header_is_served(make_server):
    """The header is consumed to its last octet and no further: a request sent with it in one write (HTTP
    speaks first) is read by the HTTP service whole."""
    server = behind_balancer(make_server, sections={"http": {"listen": ["127.0.0.1:0"]}})
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=30) as sock:
        sock.sendall(b"PROXY TCP6 2001:db8::9 2001:db8::1 41000 80\r\n"
                     b"GET /.well-known/jmap HTTP/1.1\r\nHost: mx.example.test\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 401"), response[:200]  # no credentials: the request was read whole
    assert "speaks for 2001:db8::9 (PROXY protocol)" in server.current_log()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is installed by scripts/install-deps.sh")
def test_through_haproxy_send_proxy_and_send_proxy_v2(make_server, tmp_path):
    """Debian's HAProxy in TCP mode in front of SMTP (send-proxy, v1) and IMAPS (send-proxy-v2, TLS ending at
    magpied): the client's own address (127.0.0.9 here) is what magpied records."""
    server = behind_balancer(make_server)
    smtp_port, imaps_port = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind 127.0.0.1:{smtp_port}
    default_backend smtp
backend smtp
    server magpied 127.0.0.1:{server.smtp_port} send-proxy
frontend imaps
    bind 127.0.0.1:{imaps_port}
    default_backend imaps
backend imaps
    server magpied 127.0.0.1:{server.imaps_port} send-proxy-v2
""")
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", imaps_port), timeout=5).close()
                break
            except OSError:
                assert haproxy.poll() is None and time.time() < deadline, haproxy.stdout.read() if haproxy.poll() else ""
                time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30, source_address=("127.0.0.9", 0)) as smtp:
            smtp.sendmail("x@remote.example", [ALICE], b"Subject: through haproxy\r\n\r\nhello\r\n")
        received = server.export(ALICE).split(b"\r\n\r\n", 1)[0]
        assert b"([127.0.0.9])" in received, received
        with socket.create_connection(("127.0.0.1", imaps_port), timeout=30, source_address=("127.0.0.9", 0)) as raw:
            with client_tls_context().wrap_socket(raw, server_hostname=server.hostname) as tls:
                assert read_line(tls).startswith(b"* OK")
                tls.sendall(f"a LOGIN {ALICE} \"{PASSWORD}\"\r\n".encode())
                assert read_line(tls).startswith(b"a OK")
                tls.sendall(b"b LOGOUT\r\n")
        assert "speaks for 127.0.0.9 (PROXY protocol)" in server.current_log()
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=30)


def http_via(server, source, method, path, headers, body=None):
    """One request from `source` (127.0.0.1 plays the reverse proxy): status, Set-Cookie, body. `headers` is
    a dict or a list of (name, value) pairs (a field may come on several lines)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.ports["http"], timeout=60, source_address=(source, 0))
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items() if isinstance(headers, dict) else headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body.encode())))
        connection.endheaders(body.encode() if body is not None else None)
        response = connection.getresponse()
        return response.status, response.getheader("Set-Cookie") or "", response.read()
    finally:
        connection.close()


def test_http_behind_a_reverse_proxy_takes_the_client_and_the_scheme_it_forwards(make_server):
    """[http] reverse_proxies: nginx in HTTP mode, TLS ending there, sends X-Forwarded-For and
    X-Forwarded-Proto; magpied takes them from the proxy's address only."""
    server = make_server(sections={"http": {"listen": ["127.0.0.1:0"], "reverse_proxies": ["127.0.0.1"],
                                            "max_connections_per_ip": 2}},
                         auth_options={"max_ip_failures": 3})

    def basic(user, password=PASSWORD):
        return {"Host": "mail.example.test",
                "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def forwarded(client):
        return {"X-Forwarded-Proto": "https", "X-Forwarded-For": f"203.0.113.66, {client}"}  # the left: forged

    # TLS ended at the proxy: Basic is accepted (no allow_plaintext_login) and the session's URLs are https.
    status, _, body = http_via(server, "127.0.0.1", "GET", "/jmap/session", {**basic(ALICE), **forwarded("192.0.2.1")})
    assert status == 200, body
    assert json.loads(body)["apiUrl"].startswith("https://mail.example.test/")
    # Plain HTTP at the proxy (no X-Forwarded-Proto), or the headers from an address that is no proxy: Basic
    # over plain HTTP, refused.
    assert http_via(server, "127.0.0.1", "GET", "/jmap/session", basic(ALICE))[0] == 401
    assert http_via(server, "127.0.0.5", "GET", "/jmap/session", {**basic(ALICE), **forwarded("192.0.2.1")})[0] == 401
    # The login throttle counts the forwarded client: 192.0.2.66's failures lock 192.0.2.66 out, not the
    # proxy's other clients.
    statuses = [http_via(server, "127.0.0.1", "GET", "/jmap/session",
                         {**basic(BOB, "wrong"), **forwarded("192.0.2.66")})[0] for _ in range(4)]
    assert statuses[:3] == [401, 401, 401] and statuses[3] == 429, statuses
    assert http_via(server, "127.0.0.1", "GET", "/jmap/session", {**basic(ALICE), **forwarded("192.0.2.66")})[0] == 429
    assert http_via(server, "127.0.0.1", "GET", "/jmap/session", {**basic(ALICE), **forwarded("192.0.2.1")})[0] == 200
    # The client's own X-Forwarded-For line first, the proxy's line after it: one list in their order (RFC
    # 9110 5.3), so the client is the proxy's 192.0.2.1, not the locked-out address the first line names.
    lines = list(basic(ALICE).items()) + [("X-Forwarded-For", "192.0.2.66"), ("X-Forwarded-For", "192.0.2.1"),
                                          ("X-Forwarded-Proto", "https")]
    assert http_via(server, "127.0.0.1", "GET", "/jmap/session", lines)[0] == 200
    # The webmail's sign-in from its https page through the proxy: the Origin matches, the cookie is Secure.
    status, cookie, body = http_via(
        server, "127.0.0.1", "POST", "/webmail/login",
        {"Host": "mail.example.test", "Origin": "https://mail.example.test", "Content-Type": "application/json",
         **forwarded("192.0.2.1")}, json.dumps({"username": ALICE, "password": PASSWORD}))
    assert status == 200, body
    assert cookie.startswith("__Host-magpie_session=") and "; Secure" in cookie

    # The proxy's connections carry every client's requests: [http] max_connections bounds them, not the 2 of
    # max_connections_per_ip, which a direct client still meets. Each held connection has had an answer, so
    # it is counted.
    def hold(source):
        connection = http.client.HTTPConnection("127.0.0.1", server.ports["http"], timeout=30,
                                                source_address=(source, 0))
        connection.request("GET", "/.well-known/jmap", headers={"Host": "mail.example.test"})
        response = connection.getresponse()
        response.read()
        return connection, response.status

    held = []
    try:
        for _ in range(4):
            held.append(hold("127.0.0.1"))
        assert [status for _, status in held] == [401] * 4
        for _ in range(2):
            held.append(hold("127.0.0.5"))
        third = socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=30,
                                         source_address=("127.0.0.5", 0))
        with third:
            assert third.recv(100).startswith(b"HTTP/1.1 503 ")
    finally:
        for connection, _ in held:
            connection.close()
