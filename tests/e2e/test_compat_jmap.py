"""Faults other JMAP servers were reported for (issue threads of Cyrus, Stalwart and clients' trackers), tried
against magpied: patch paths are JSON Pointers (RFC 8620 5.3: "~1" is '/', a path under another path of the
same patch is invalid), and Email/set create takes header:Name:asText and a draft without a From."""
import pytest

from test_jmap import CORE, HTTP_LIMITS, MAIL, Client, account_id

SUBMISSION = "urn:ietf:params:jmap:submission"


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": HTTP_LIMITS})
    return server, Client(server)


def call(client, name, arguments):
    status, _, response = client.api([[name, arguments, "c"]])
    assert status == 200, response
    return response["methodResponses"][0]


def mailbox_id(client, account, role):
    boxes = call(client, "Mailbox/get", {"accountId": account})[1]["list"]
    return next(m["id"] for m in boxes if m["role"] == role)


def create_draft(client, account, **properties):
    drafts = mailbox_id(client, account, "drafts")
    email = {"mailboxIds": {drafts: True}, "subject": "draft", "bodyValues": {"1": {"value": "text"}},
             "textBody": [{"partId": "1", "type": "text/plain"}], **properties}
    return call(client, "Email/set", {"accountId": account, "create": {"d": email}})[1]


def raw_message(client, account, blob_id):
    status, _, body = client.request("GET", f"/jmap/download/{account}/{blob_id}/m.eml?type=message/rfc822")
    assert status == 200
    return body


def test_patch_path_tokens_are_json_pointers(jmap):
    """Cyrus #2917 and Stalwart's numeric-token bug: the token after "keywords/" is unescaped as RFC 6901
    says ("~1" is '/', "~0" is '~'); a bare '~' or a second level is an invalid patch."""
    server, client = jmap
    account = account_id(client)
    email_id = create_draft(client, account, **{"from": [{"email": "alice@example.test"}]})["created"]["d"]["id"]
    result = call(client, "Email/set", {"accountId": account,
                                        "update": {email_id: {"keywords/a~1b": True, "keywords/c~0d": True,
                                                              "keywords/0": True}}})[1]
    assert result["updated"] == {email_id: None}, result
    keywords = call(client, "Email/get", {"accountId": account, "ids": [email_id],
                                          "properties": ["keywords"]})[1]["list"][0]["keywords"]
    assert {"a/b", "c~d", "0"} <= set(keywords), keywords
    assert "a~1b" not in keywords
    for bad in ("keywords/a~2b", "keywords/a~", "keywords/a/b"):
        result = call(client, "Email/set", {"accountId": account, "update": {email_id: {bad: True}}})[1]
        assert result["notUpdated"][email_id]["type"] == "invalidPatch", (bad, result)


def test_a_patch_path_under_another_path_of_the_patch_is_invalid(jmap):
    """RFC 8620 5.3: "keywords" and "keywords/$seen" in one patch is no valid patch (which would win?)."""
    server, client = jmap
    account = account_id(client)
    email_id = create_draft(client, account, **{"from": [{"email": "alice@example.test"}]})["created"]["d"]["id"]
    inbox = mailbox_id(client, account, "inbox")
    for patch in ({"keywords": {"$seen": True}, "keywords/$flagged": True},
                  {"mailboxIds": {inbox: True}, f"mailboxIds/{inbox}": None}):
        result = call(client, "Email/set", {"accountId": account, "update": {email_id: patch}})[1]
        assert result["notUpdated"][email_id]["type"] == "invalidPatch", (patch, result)


def test_create_takes_header_fields_in_text_and_raw_forms(jmap):
    """RFC 8621 4.1.2: header:Name:asText was refused as "holds CR, LF or another control character" for
    any value; asText and asRaw are written like the raw form, the parsed forms are refused by name."""
    server, client = jmap
    account = account_id(client)
    result = create_draft(client, account, **{"from": [{"email": "alice@example.test"}],
                                             "header:X-Text:asText": "caf\u00e9 au lait",
                                             "header:X-Raw:asRaw": " raw value", "header:X-Plain": " plain"})
    assert "d" in (result["created"] or {}), result
    raw = raw_message(client, account, result["created"]["d"]["blobId"])
    assert "X-Text: caf\u00e9 au lait\r\n".encode() in raw
    assert b"X-Raw: raw value\r\n" in raw and b"X-Plain: plain\r\n" in raw
    result = create_draft(client, account, **{"header:X-Text:asText": "a\r\nBcc: evil@example.net"})
    assert result["notCreated"]["d"]["type"] == "invalidProperties", result
    result = create_draft(client, account, **{"header:Date:asDate": "2020-01-01T00:00:00Z"})
    assert result["notCreated"]["d"]["properties"] == ["header:Date:asDate"], result


def test_a_draft_without_from_is_created_and_cannot_be_sent(jmap):
    """RFC 8621 4.6 asks no From of a new Email (a draft saved before its sender is chosen); it was refused
    as "address needs local@domain". The message simply has no From field."""
    server, client = jmap
    account = account_id(client)
    result = create_draft(client, account, to=[{"email": "bob@example.test"}])
    assert "d" in (result["created"] or {}), result
    raw = raw_message(client, account, result["created"]["d"]["blobId"])
    assert b"\r\nFrom:" not in raw and not raw.startswith(b"From:")
    assert b"Subject: draft\r\n" in raw
    using = (CORE, MAIL, SUBMISSION)
    status, _, response = client.api([["Identity/get", {"accountId": account}, "i"]], using=using)
    identity = response["methodResponses"][0][1]["list"][0]["id"]
    status, _, response = client.api([["EmailSubmission/set", {"accountId": account, "create": {
        "s": {"identityId": identity, "emailId": result["created"]["d"]["id"]}}}, "c"]], using=using)
    assert status == 200, response
    assert response["methodResponses"][0][1]["notCreated"]["s"]["type"] == "invalidEmail", response
