"""JMAP binary data (RFC 8620 6) against a real magpied with urllib: upload (durable, bounded by
maxSizeUpload), download with a safe Content-Disposition for any name, Blob/copy, and blob ids of another
account refused everywhere."""
import hashlib
import json
import smtplib
import urllib.parse

import pytest

from test_jmap import ALICE, BOB, CORE, MAIL, HTTP_LIMITS, Client, account_id

LIMITS = dict(HTTP_LIMITS, max_upload_octets=100000)


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": LIMITS})
    return server, Client(server)


def upload(client, account, data, content_type="application/octet-stream"):
    status, headers, body = client.request("POST", f"/jmap/upload/{account}/", data,
                                           headers={"Content-Type": content_type})
    return status, json.loads(body)


def test_upload_answers_201_with_the_content_hash_and_survives_a_restart(jmap):
    server, client = jmap
    account = account_id(client)
    data = b"attachment bytes \x00\xff" * 100
    status, answer = upload(client, account, data, "Image/PNG; x=1")
    assert status == 201, answer
    assert answer == {"accountId": account, "blobId": hashlib.sha256(data).hexdigest(), "type": "image/png",
                      "size": len(data)}
    server.kill()  # acknowledged means committed: a SIGKILL right after the 201 loses nothing
    server.start()
    client = Client(server)
    status, headers, body = client.request(
        "GET", f"/jmap/download/{account}/{answer['blobId']}/pic.png?type=image%2Fpng")
    assert status == 200 and body == data
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == "attachment; filename=\"pic.png\"; filename*=UTF-8''pic.png"


def test_upload_over_max_size_upload_is_the_limit_problem(jmap):
    _, client = jmap
    account = account_id(client)
    status, answer = upload(client, account, b"x" * 100001)
    assert status == 413
    assert answer["type"] == "urn:ietf:params:jmap:error:limit" and answer["limit"] == "maxSizeUpload"
    # The connection and the account still work.
    status, answer = upload(client, account, b"x" * 100000)
    assert status == 201


def test_api_requests_keep_their_own_smaller_bound(jmap):
    _, client = jmap
    status, _, body = client.request("POST", "/jmap/api", b"{" + b" " * 200001 + b"}")
    assert status == 413 and json.loads(body)["limit"] == "maxSizeRequest"


def test_download_names_cannot_inject_headers(jmap):
    _, client = jmap
    account = account_id(client)
    _, answer = upload(client, account, b"<script>alert(1)</script>", "text/html")
    name = urllib.parse.quote('evil"\r\nSet-Cookie: a=b\\Grüße.html', safe="")
    status, headers, body = client.request(
        "GET", f"/jmap/download/{account}/{answer['blobId']}/{name}?type=text%2Fhtml%0D%0AX-Evil%3A%201")
    assert status == 200
    assert headers.get("Set-Cookie") is None and headers.get("X-Evil") is None
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Security-Policy"] == "sandbox"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=\"evil_  Set-Cookie: a=b_Gr____e.html\"".replace("  ", "__"))
    assert "filename*=UTF-8''evil%22%0D%0ASet-Cookie%3A%20a%3Db%5CGr%C3%BC%C3%9Fe.html" in disposition


def test_message_blobs_download_and_other_accounts_blobs_are_refused(jmap):
    server, client = jmap
    account = account_id(client)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("someone@remote.test", [BOB], b"From: someone@remote.test\r\nSubject: for bob\r\n\r\nsecret\r\n")
    bob = Client(server, BOB)
    bob_account = account_id(bob)
    _, bob_upload = upload(bob, bob_account, b"bob's own bytes")
    raw = server.export(BOB, uid=1)
    message_blob = hashlib.sha256(raw).hexdigest()
    # Bob's message is readable by bob through its store blob id, and by nobody else.
    status, _, body = bob.request("GET", f"/jmap/download/{bob_account}/{message_blob}/m.eml?type=message/rfc822")
    assert status == 200 and body == raw
    _, uploaded = upload(client, account, b"alice's bytes")
    for blob in (bob_upload["blobId"], message_blob):
        status, _, _ = client.request("GET", f"/jmap/download/{account}/{blob}/x")
        assert status == 404
        status, _, _ = client.request("GET", f"/jmap/download/{bob_account}/{blob}/x")
        assert status == 404
    status, _, _ = client.request("POST", f"/jmap/upload/{bob_account}/", b"x")
    assert status == 404
    status, _, response = client.api([
        ["Blob/copy", {"fromAccountId": account, "accountId": account,
                       "blobIds": [uploaded["blobId"], bob_upload["blobId"], "nonsense"]}, "c1"],
        ["Blob/copy", {"fromAccountId": bob_account, "accountId": account, "blobIds": [bob_upload["blobId"]]}, "c2"],
    ], using=(CORE,))
    assert status == 200
    copy = response["methodResponses"][0]
    assert copy[0] == "Blob/copy"
    assert copy[1]["copied"] == {uploaded["blobId"]: uploaded["blobId"]}
    assert copy[1]["notCopied"] == {bob_upload["blobId"]: {"type": "notFound"}, "nonsense": {"type": "notFound"}}
    assert response["methodResponses"][1][0] == "error"
    assert response["methodResponses"][1][1]["type"] == "fromAccountNotFound"
