"""JMAP over WebSocket (RFC 8887) against a real magpied, with a real WebSocket client (Debian's
python3-websocket): the session capability, the RFC's example exchange, authentication and subprotocol
refusals, the message size bound, push of a StateChange after an SMTP delivery, push disable, pushState
catch-up, pings and the idle close (a raw socket, which never answers pings)."""
import base64
import json
import os
import smtplib
import socket
import struct
import time
import urllib.request

import pytest
import websocket

from test_jmap import ALICE, CORE, HTTP_LIMITS, MAIL, PASSWORD, Client, account_id, basic, http_port

WS = "urn:ietf:params:jmap:websocket"
DEADLINE = 120  # seconds: guards against a hang only; CI runs under load


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": dict(HTTP_LIMITS, max_request_octets=8000)})
    return server, Client(server)


def ws_url(server):
    return f"ws://127.0.0.1:{http_port(server)}/jmap/ws"


def connect(server, auth=None, **options):
    options.setdefault("subprotocols", ["jmap"])
    headers = [f"Authorization: {auth or basic(ALICE)}"] if auth is not False else []
    return websocket.create_connection(ws_url(server), timeout=DEADLINE, header=headers, **options)


def receive(conn):
    opcode, data = conn.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
    return json.loads(data)


def request(conn, message):
    conn.send(json.dumps(message))
    return receive(conn)


def enable_push(conn, account, **arguments):
    """Push on, then a request whose Response shows the server has taken it (messages run in order): what came
    before that Response (a pushState catch-up) is returned."""
    conn.send(json.dumps({"@type": "WebSocketPushEnable", **arguments}))
    conn.send(json.dumps({"@type": "Request", "id": "sync", "using": [CORE, MAIL],
                          "methodCalls": [["Mailbox/get", {"accountId": account, "ids": []}, "s"]]}))
    before = []
    while (message := receive(conn)).get("requestId") != "sync":
        before.append(message)
    return before


def refusal(server, **options):
    with pytest.raises(websocket.WebSocketBadStatusException) as failed:
        connect(server, **options)
    return failed.value.status_code


def deliver(server, subject):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=DEADLINE) as smtp:
        smtp.sendmail("carol@remote.test", [ALICE], f"Subject: {subject}\r\n\r\nhello\r\n".encode())


def test_session_advertises_the_websocket_capability(jmap):
    server, client = jmap
    capability = client.session()["capabilities"][WS]
    assert capability == {"url": ws_url(server), "supportsPush": True}


def test_the_rfc_8887_example_exchange(jmap):
    # RFC 8887 5: a Request with an id, its Response, push on, a StateChange, push off, a RequestError.
    server, client = jmap
    account = account_id(client)
    conn = connect(server)
    assert conn.getsubprotocol() == "jmap"
    answer = request(conn, {"@type": "Request", "id": "R1", "using": [CORE, MAIL],
                            "methodCalls": [["Mailbox/get", {"accountId": account, "properties": ["name"]}, "c1"]]})
    assert answer["@type"] == "Response" and answer["requestId"] == "R1", answer
    assert answer["methodResponses"][0][0] == "Mailbox/get"
    assert answer["methodResponses"][0][1]["list"], answer
    assert answer["sessionState"] == client.session()["state"]
    # A Request without an id is answered without requestId; the WebSocket capability may be in "using".
    anonymous = request(conn, {"@type": "Request", "using": [CORE, MAIL, WS],
                               "methodCalls": [["Mailbox/get", {"accountId": account, "ids": []}, "e"]]})
    assert anonymous["@type"] == "Response" and "requestId" not in anonymous
    assert anonymous["methodResponses"][0][0] == "Mailbox/get", anonymous

    assert enable_push(conn, account, dataTypes=["Mailbox", "Email"]) == []
    deliver(server, "pushed")
    change = receive(conn)
    assert change["@type"] == "StateChange", change
    assert set(change["changed"][account]) <= {"Mailbox", "Email"} and "Email" in change["changed"][account]
    assert change["pushState"]

    bad = request(conn, {"@type": "Request", "id": "R3", "using": ["urn:example:nope"], "methodCalls": []})
    assert bad["@type"] == "RequestError" and bad["requestId"] == "R3"
    assert bad["type"] == "urn:ietf:params:jmap:error:unknownCapability" and bad["status"] == 400
    conn.send("{")
    not_json = receive(conn)
    assert not_json["@type"] == "RequestError" and not_json["type"] == "urn:ietf:params:jmap:error:notJSON"
    not_request = request(conn, {"@type": "Pancake", "id": "R4"})
    assert not_request["type"] == "urn:ietf:params:jmap:error:notRequest" and not_request["requestId"] == "R4"
    too_many = request(conn, {"@type": "Request", "id": "R5", "using": [CORE, MAIL],
                              "methodCalls": [["Mailbox/get", {"accountId": account, "ids": []}, str(i)]
                                              for i in range(17)]})
    assert too_many["type"] == "urn:ietf:params:jmap:error:limit" and too_many["limit"] == "maxCallsInRequest"

    # Push off: a delivery then brings no StateChange; the next message is the answer to the next request.
    conn.send(json.dumps({"@type": "WebSocketPushDisable"}))
    deliver(server, "not pushed")
    echo = request(conn, {"@type": "Request", "id": "R6", "using": [CORE, MAIL],
                          "methodCalls": [["Mailbox/get", {"accountId": account, "ids": []}, "e"]]})
    assert echo["@type"] == "Response" and echo["requestId"] == "R6", echo
    conn.close()


def test_push_state_brings_the_changes_missed_while_away(jmap):
    server, client = jmap
    account = account_id(client)
    conn = connect(server)
    assert enable_push(conn, account, dataTypes=None) == []
    deliver(server, "first")
    first = receive(conn)
    conn.close()
    deliver(server, "while away")
    conn = connect(server)
    [caught_up] = enable_push(conn, account, dataTypes=["Email"], pushState=first["pushState"])
    assert caught_up["@type"] == "StateChange" and list(caught_up["changed"][account]) == ["Email"]
    assert caught_up["changed"][account]["Email"] != first["changed"][account]["Email"]
    conn.close()


def test_upgrades_without_credentials_or_the_jmap_subprotocol_are_refused(jmap):
    server, _ = jmap
    assert refusal(server, auth=False) == 401
    assert refusal(server, auth=basic(ALICE, "wrong password")) == 401
    assert refusal(server, subprotocols=["chat"]) == 400
    assert refusal(server, subprotocols=[]) == 400
    # A plain GET of the WebSocket URL is told to upgrade.
    client = Client(server)
    status, headers, _ = client.request("GET", "/jmap/ws")
    assert status == 426 and headers["Upgrade"] == "websocket"


def test_cookie_upgrades_must_come_from_the_webmails_origin(jmap):
    server, client = jmap
    port = http_port(server)
    login = urllib.request.Request(f"http://127.0.0.1:{port}/webmail/login", method="POST",
                                   data=json.dumps({"username": ALICE, "password": PASSWORD}).encode(),
                                   headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login, timeout=DEADLINE) as response:
        cookie = response.headers["Set-Cookie"].split(";")[0]
    assert refusal(server, auth=False, cookie=cookie, origin="http://evil.test") == 403
    assert refusal(server, auth=False, cookie=cookie, suppress_origin=True) == 403
    conn = connect(server, auth=False, cookie=cookie, origin=f"http://127.0.0.1:{port}")
    answer = request(conn, {"@type": "Request", "id": "c", "using": [CORE, MAIL],
                            "methodCalls": [["Mailbox/get", {"accountId": account_id(client), "ids": []}, "e"]]})
    assert answer["@type"] == "Response"
    conn.close()


def test_a_message_over_max_size_request_closes_with_1009(jmap):
    server, _ = jmap
    conn = connect(server)
    conn.send("x" * 10000)  # max_request_octets is 8000 here: the whole frame is read at once
    frame = conn.recv_data_frame(True)[1]
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    assert struct.unpack("!H", frame.data[:2])[0] == 1009 and b"maxSizeRequest" in frame.data


def test_binary_messages_close_with_1003(jmap):
    server, _ = jmap
    conn = connect(server)
    conn.send_binary(b"\x00\x01")
    frame = conn.recv_data_frame(True)[1]
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1003


def test_silent_clients_get_pings_then_an_idle_close(make_server):
    server = make_server(sections={"http": dict(HTTP_LIMITS, websocket_ping_interval=1, websocket_idle_timeout=3)})
    sock = socket.create_connection(("127.0.0.1", http_port(server)), timeout=DEADLINE)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /jmap/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n"
                 f"Authorization: {basic(ALICE)}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, data = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    opcodes = []
    while True:  # the server's frames: unmasked, short
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7f):
            length = data[1] & 0x7f
            opcodes.append((data[0] & 0x0f, data[2:2 + length]))
            data = data[2 + length:]
        if opcodes and opcodes[-1][0] == 8:
            break
    assert (9, b"") in opcodes, opcodes
    assert opcodes[-1][0] == 8 and struct.unpack("!H", opcodes[-1][1][:2])[0] == 1001, opcodes


def test_the_server_waits_for_the_clients_close_frame_before_closing_tcp(make_server):
    # RFC 6455 7.1.1 and 5.5.1: after the server's own close frame, the TCP connection stays open until the
    # client's close frame comes back (bounded by [http] websocket_close_timeout, long here), then it ends.
    server = make_server(sections={"http": dict(HTTP_LIMITS, websocket_close_timeout=300)})
    conn = connect(server)
    conn.send_binary(b"\x00\x01")
    frame = conn.recv_frame()  # the bare frame: recv_data_frame would answer a close at once
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1003
    conn.sock.settimeout(1)
    with pytest.raises(socket.timeout):
        conn.sock.recv(1)  # still open: the server waits for our close
    conn.send_close(websocket.STATUS_NORMAL)
    conn.sock.settimeout(DEADLINE)
    assert conn.sock.recv(1) == b""  # our close arrived: the server closes


def test_a_client_that_never_answers_the_close_is_closed_after_the_timeout(make_server):
    server = make_server(sections={"http": dict(HTTP_LIMITS, websocket_close_timeout=1)})
    conn = connect(server)
    conn.send_binary(b"\x00\x01")
    assert conn.recv_frame().opcode == websocket.ABNF.OPCODE_CLOSE  # not answered
    conn.sock.settimeout(DEADLINE)
    assert conn.sock.recv(1) == b""


def test_websocket_requests_count_in_max_concurrent_requests(make_server):
    # RFC 8620 2 maxConcurrentRequests over RFC 8887: one connection runs its Requests one at a time, so the
    # limit shows with several connections of one account at once. Requests beyond it get a RequestError of
    # type limit naming maxConcurrentRequests; the others are answered; afterwards the slots are free again.
    server = make_server(sections={"http": dict(HTTP_LIMITS, max_concurrent_requests=1, max_request_octets=200000)})
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=DEADLINE) as smtp:
        for i in range(100):
            smtp.sendmail("carol@remote.test", [ALICE], f"Subject: m{i}\r\n\r\n{'filler text ' * 200}\r\n".encode())
    conns = [connect(server) for _ in range(8)]
    account = account_id(Client(server))
    heavy = {"@type": "Request", "using": [CORE, MAIL],
             "methodCalls": [["Email/query", {"accountId": account, "filter": {"text": "nothing-matches"}}, "q"]]}
    limited, answered = [], 0
    rounds = 0
    while not limited and rounds < 200:  # a hang guard: the first round normally overlaps
        rounds += 1
        for n, conn in enumerate(conns):
            conn.send(json.dumps(dict(heavy, id=f"r{rounds}-{n}")))
        for conn in conns:
            message = receive(conn)
            if message["@type"] == "RequestError":
                assert message["type"] == "urn:ietf:params:jmap:error:limit", message
                assert message["limit"] == "maxConcurrentRequests", message
                limited.append(message["requestId"])
            else:
                assert message["@type"] == "Response", message
                answered += 1
    assert limited and answered
    # Nothing is left counted: one request at a time always passes.
    for conn in conns:
        assert request(conn, dict(heavy, id="after"))["@type"] == "Response"
    print(f"websocket maxConcurrentRequests: {len(limited)} refused, {answered} answered in {rounds} round(s)")


@pytest.mark.own_store(reason="it stops and restarts its own PostgreSQL under magpied")
def test_websocket_push_lives_through_a_store_outage(own_cluster, make_server):
    # As the EventSource (http/push_state.h): a state read that fails while PostgreSQL is away sends nothing
    # and ends nothing; the connection stays (pongs, requests get answers again afterwards) and the first
    # change after the outage is pushed on it.
    server = make_server(store_dsn=own_cluster.create_database("wspush"),
                         sections={"http": dict(HTTP_LIMITS, websocket_ping_interval=1)})
    client = Client(server)
    account = account_id(client)
    conn = connect(server)
    assert enable_push(conn, account, dataTypes=["Email"]) == []
    own_cluster.outage()
    try:
        conn.ping("still there?")
        conn.sock.settimeout(DEADLINE)
        while True:  # the server's pings and our pong, over a few of its read-again ticks
            frame = conn.recv_data_frame(True)[1]
            if frame.opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"still there?":
                break
            assert frame.opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG), frame
    finally:
        own_cluster.resume()
    deadline = time.time() + DEADLINE
    while True:  # the store's pool reconnects on its own: mail is accepted again
        try:
            with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=DEADLINE) as smtp:
                smtp.sendmail("carol@remote.test", [ALICE], b"Subject: after\r\n\r\nhi\r\n")
            break
        except (smtplib.SMTPException, OSError):
            assert time.time() < deadline, server.log_text()[-3000:]
            time.sleep(0.5)
    while True:
        frame = conn.recv_data_frame(True)[1]
        if frame.opcode == websocket.ABNF.OPCODE_TEXT:
            change = json.loads(frame.data)
            break
        assert frame.opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG), frame
    assert change["@type"] == "StateChange" and "Email" in change["changed"][account], change
    assert parse_token(change["pushState"])["Email"] == change["changed"][account]["Email"]


def parse_token(token):
    return json.loads(base64.b64decode(token))
