"""Email, Thread and friends (RFC 8621 3-5) against a real magpied with urllib: Email/get with bodies and
header forms, Email/query with filters, sorts, collapseThreads and anchors, Email/changes after IMAP
changes, Email/set (keywords, mailboxIds, a draft with an attachment by blobId, destroy), Email/import,
Email/parse, Email/copy's answer for a single account, Thread/get, and part blobs through download."""
import imaplib
import json
import re
import smtplib

import pytest

from conftest import PASSWORD, client_tls_context
from test_jmap import ALICE, BOB, CORE, HTTP_LIMITS, MAIL, Client, account_id

MESSAGE = (b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: Plans\r\n"
           b"Message-ID: <plans@remote.test>\r\nDate: Thu, 30 Oct 2014 14:12:00 +0800\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the map.\r\n"
           b"--b\r\nContent-Type: image/png; name=map.png\r\nContent-Disposition: attachment; filename=map.png\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--b--\r\n")
REPLY = (b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: Re: Plans\r\n"
         b"In-Reply-To: <plans@remote.test>\r\nReferences: <plans@remote.test>\r\n\r\nAnd lunch.\r\n")


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": HTTP_LIMITS})
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("carol@remote.test", [ALICE], MESSAGE)
        smtp.sendmail("carol@remote.test", [ALICE], REPLY)
    return server, Client(server)


@pytest.fixture(autouse=True)
def store_has_emails(jmap):
    """The Email methods stand on the store's Email implementation (the email helper's branch); a store
    without it answers serverFail "not supported by this store backend", and these tests say so."""
    server, client = jmap
    status, _, response = client.api([["Email/query", {"accountId": account_id(client)}, "probe"]])
    answer = response["methodResponses"][0]
    if answer[0] == "error" and "not supported by this store backend" in answer[1].get("description", ""):
        pytest.skip("this build's store has no Email implementation yet (the email branch)")


def call(client, name, arguments):
    status, _, response = client.api([[name, arguments, "c"]])
    assert status == 200, response
    return response["methodResponses"][0]


def inbox_query(client, account, **extra):
    boxes = call(client, "Mailbox/get", {"accountId": account})[1]["list"]
    inbox = next(m["id"] for m in boxes if m["role"] == "inbox")
    return inbox, call(client, "Email/query", dict({"accountId": account, "filter": {"inMailbox": inbox}}, **extra))[1]


def test_get_bodies_headers_and_part_blobs(jmap):
    server, client = jmap
    account = account_id(client)
    _, query = inbox_query(client, account, sort=[{"property": "receivedAt", "isAscending": True}])
    first = query["ids"][0]
    email = call(client, "Email/get", {"accountId": account, "ids": [first], "fetchTextBodyValues": True,
                                       "properties": ["subject", "from", "sentAt", "messageId", "textBody",
                                                      "attachments", "bodyValues", "hasAttachment", "preview",
                                                      "header:Subject:asText", "threadId", "size", "keywords"]})[1]
    got = email["list"][0]
    assert got["subject"] == "Plans" and got["from"] == [{"name": "Carol", "email": "carol@remote.test"}]
    assert got["sentAt"] == "2014-10-30T14:12:00+08:00" and got["messageId"] == ["plans@remote.test"]
    assert got["bodyValues"][got["textBody"][0]["partId"]]["value"] == "See the map."
    assert got["hasAttachment"] is True and got["preview"] == "See the map."
    attachment = got["attachments"][0]
    assert attachment["name"] == "map.png" and attachment["type"] == "image/png" and attachment["size"] == 6
    status, headers, body = client.request(
        "GET", f"/jmap/download/{account}/{attachment['blobId']}/map.png?type=image%2Fpng")
    assert status == 200 and body == b"\x89PNG\r\n"
    # The reply joined the first message's thread at delivery.
    thread = call(client, "Thread/get", {"accountId": account, "ids": [got["threadId"]]})[1]
    assert len(thread["list"][0]["emailIds"]) == 2 and thread["list"][0]["emailIds"][0] == first


def test_query_filters_sorts_collapse_and_anchor(jmap):
    server, client = jmap
    account = account_id(client)
    _, by_size = inbox_query(client, account, sort=[{"property": "size", "isAscending": True}], calculateTotal=True)
    assert by_size["total"] == 2
    small, large = by_size["ids"]
    _, collapsed = inbox_query(client, account, collapseThreads=True, calculateTotal=True)
    assert collapsed["total"] == 1
    _, anchored = inbox_query(client, account, sort=[{"property": "size", "isAscending": True}], anchor=large)
    assert anchored["ids"] == [large] and anchored["position"] == 1
    response = call(client, "Email/query", {"accountId": account, "anchor": "e999999"})
    assert response == ["error", {"type": "anchorNotFound", "description": response[1]["description"]}, "c"]
    found = call(client, "Email/query", {"accountId": account, "filter": {"subject": "re: plans"}})[1]
    assert found["ids"] == [small]
    found = call(client, "Email/query", {"accountId": account, "filter": {
        "operator": "NOT", "conditions": [{"from": "carol"}]}})[1]
    assert found["ids"] == []
    response = call(client, "Email/query", {"accountId": account, "filter": {"body": "lunch"}})
    assert response[1]["ids"] == [small]  # issue 14: bodies are searched
    response = call(client, "Email/query", {"accountId": account, "filter": {"attachmentName": "x"}})
    assert response[1]["type"] == "unsupportedFilter"
    response = call(client, "Email/query", {"accountId": account, "sort": [{"property": "hasKeyword"}]})
    assert response[1]["type"] == "unsupportedSort"


def test_imap_flags_and_moves_show_in_email_changes_and_keywords(jmap):
    server, client = jmap
    account = account_id(client)
    _, query = inbox_query(client, account)
    state = call(client, "Email/get", {"accountId": account, "ids": []})[1]["state"]
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
    imap.starttls(ssl_context=client_tls_context())
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    imap.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    imap.logout()
    changes = call(client, "Email/changes", {"accountId": account, "sinceState": state})[1]
    assert len(changes["updated"]) == 1 and changes["created"] == [] and changes["destroyed"] == []
    flagged = call(client, "Email/get", {"accountId": account, "ids": changes["updated"], "properties": ["keywords"]})[1]
    assert flagged["list"][0]["keywords"] == {"$flagged": True}


def test_imap_objectids_are_the_jmap_ids_of_the_same_message(jmap):
    """RFC 8474's EMAILID, THREADID and MAILBOXID are the very strings JMAP gives as id, threadId and the
    mailboxIds keys (one spelling, store/object_id.h): a client speaking both sees one object."""
    server, client = jmap
    account = account_id(client)
    inbox, query = inbox_query(client, account)
    emails = call(client, "Email/get", {"accountId": account, "ids": query["ids"],
                                        "properties": ["id", "threadId", "mailboxIds", "messageId"]})[1]["list"]
    by_message_id = {e["messageId"][0] if e["messageId"] else None: e for e in emails}
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
    imap.starttls(ssl_context=client_tls_context())
    imap.login(ALICE, PASSWORD)
    typ, _ = imap.select("INBOX")
    assert typ == "OK"
    selected = b" ".join(r for r in imap.untagged_responses.get("OK", []) if b"MAILBOXID" in r)
    assert f"MAILBOXID ({inbox})".encode() in selected, selected
    typ, found = imap.uid("SEARCH", "HEADER", "Message-ID", "<plans@remote.test>")
    assert typ == "OK" and len(found[0].split()) == 1
    plans_uid = int(found[0])
    typ, data = imap.uid("FETCH", "1:*", "(UID EMAILID THREADID)")
    assert typ == "OK"
    imap.logout()
    seen = 0
    for item in data:
        meta = (item[0] if isinstance(item, tuple) else item).decode()
        uid = int(re.search(r"UID (\d+)", meta).group(1))
        email_id = re.search(r"EMAILID \(([A-Za-z0-9_-]+)\)", meta).group(1)
        thread_id = re.search(r"THREADID \(([A-Za-z0-9_-]+)\)", meta).group(1)
        jmap_email = by_message_id["plans@remote.test" if uid == plans_uid else None]
        assert (email_id, thread_id) == (jmap_email["id"], jmap_email["threadId"])
        assert list(jmap_email["mailboxIds"]) == [inbox]
        seen += 1
    assert seen == len(emails) == 2
    # Both messages are one conversation: one THREADID, one JMAP threadId.
    assert len({e["threadId"] for e in emails}) == 1


def test_set_keywords_mailboxes_create_with_attachment_and_destroy(jmap):
    server, client = jmap
    account = account_id(client)
    inbox, query = inbox_query(client, account)
    boxes = {m["role"]: m["id"] for m in call(client, "Mailbox/get", {"accountId": account})[1]["list"]}
    target = query["ids"][0]
    answer = call(client, "Email/set", {"accountId": account, "update": {
        target: {"keywords/$seen": True, f"mailboxIds/{boxes['archive']}": True, f"mailboxIds/{inbox}": None}}})[1]
    assert answer["updated"] == {target: None}
    got = call(client, "Email/get", {"accountId": account, "ids": [target], "properties": ["keywords", "mailboxIds"]})[1]
    assert got["list"][0] == {"id": target, "keywords": {"$seen": True}, "mailboxIds": {boxes["archive"]: True}}

    status, _, body = client.request("POST", f"/jmap/upload/{account}/", b"%PDF-1.4 tiny", headers={"Content-Type": "application/pdf"})
    blob = json.loads(body)["blobId"]
    answer = call(client, "Email/set", {"accountId": account, "create": {"d": {
        "mailboxIds": {boxes["drafts"]: True}, "keywords": {"$draft": True},
        "from": [{"name": "Alice", "email": ALICE}], "to": [{"email": BOB}], "subject": "Report",
        "textBody": [{"partId": "1", "type": "text/plain"}], "bodyValues": {"1": {"value": "Attached."}},
        "attachments": [{"blobId": blob, "type": "application/pdf", "name": "report.pdf"}]},
        "missing": {"mailboxIds": {boxes["drafts"]: True}, "attachments": [{"blobId": "0" * 64}]},
        "nowhere": {"subject": "x"}}})[1]
    assert answer["notCreated"]["missing"]["type"] == "blobNotFound"
    assert answer["notCreated"]["nowhere"]["type"] == "invalidProperties"
    draft = answer["created"]["d"]["id"]
    got = call(client, "Email/get", {"accountId": account, "ids": [draft], "fetchTextBodyValues": True,
                                     "properties": ["subject", "attachments", "bodyValues", "textBody", "keywords"]})[1]["list"][0]
    assert got["subject"] == "Report" and got["keywords"] == {"$draft": True}
    assert got["attachments"][0]["name"] == "report.pdf"
    status, _, body = client.request("GET", f"/jmap/download/{account}/{got['attachments'][0]['blobId']}/r.pdf")
    assert body == b"%PDF-1.4 tiny"
    answer = call(client, "Email/set", {"accountId": account, "destroy": [draft, "e999999"]})[1]
    assert answer["destroyed"] == [draft] and answer["notDestroyed"]["e999999"]["type"] == "notFound"


def test_import_parse_and_copy(jmap):
    server, client = jmap
    account = account_id(client)
    inbox, _ = inbox_query(client, account)
    raw = b"From: dan@remote.test\r\nTo: alice@example.test\r\nSubject: Imported\r\n\r\nOld mail.\r\n"
    status, _, body = client.request("POST", f"/jmap/upload/{account}/", raw, headers={"Content-Type": "message/rfc822"})
    blob = json.loads(body)["blobId"]
    parsed = call(client, "Email/parse", {"accountId": account, "blobIds": [blob, "nope"],
                                          "properties": ["subject", "from", "id", "size"]})[1]
    assert parsed["parsed"][blob] == {"subject": "Imported", "from": [{"name": None, "email": "dan@remote.test"}],
                                      "id": None, "size": len(raw)}
    assert parsed["notFound"] == ["nope"]
    answer = call(client, "Email/import", {"accountId": account, "emails": {"i": {
        "blobId": blob, "mailboxIds": {inbox: True}, "keywords": {"$seen": True}, "receivedAt": "2020-01-01T00:00:00Z"}}})[1]
    imported = answer["created"]["i"]
    got = call(client, "Email/get", {"accountId": account, "ids": [imported["id"]], "properties": ["receivedAt", "subject"]})[1]
    assert got["list"][0]["receivedAt"] == "2020-01-01T00:00:00Z" and got["list"][0]["subject"] == "Imported"
    bob = account_id(Client(server, BOB))
    answer = call(client, "Email/copy", {"fromAccountId": bob, "accountId": account, "create": {}})
    assert answer[1]["type"] == "fromAccountNotFound"
    status, _, _ = Client(server, BOB).request("GET", f"/jmap/download/{bob}/{imported['blobId']}/x")
    assert status == 404
