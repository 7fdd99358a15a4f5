"""Mailbox/set (RFC 8621 2.5) against a real magpied with urllib: create under a parent (with a creation
reference), rename, move, roles, subscriptions, destroy with and without onDestroyRemoveEmails, the RFC's
SetErrors, ifInState, and IMAP seeing the result."""
import imaplib
import smtplib

import pytest

from conftest import PASSWORD, client_tls_context
from test_jmap import ALICE, CORE, HTTP_LIMITS, MAIL, Client, account_id


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": HTTP_LIMITS})
    return server, Client(server)


def call(client, name, arguments):
    status, _, response = client.api([[name, arguments, "c"]])
    assert status == 200, response
    return response["methodResponses"][0]


def mailboxes(client, account):
    answer = call(client, "Mailbox/get", {"accountId": account})[1]
    return {m["id"]: m for m in answer["list"]}, answer["state"]


def by_name(boxes, name):
    return next(m for m in boxes.values() if m["name"] == name)


def imap_login(server):
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
    imap.starttls(ssl_context=client_tls_context())
    imap.login(ALICE, PASSWORD)
    return imap


def imap_list(server):
    imap = imap_login(server)
    _, lines = imap.list()
    imap.logout()
    return [line.decode().rsplit(" ", 1)[-1].strip('"') for line in lines]


def test_create_a_tree_with_a_creation_reference_then_rename_and_move(jmap):
    server, client = jmap
    account = account_id(client)
    _, state = mailboxes(client, account)
    status, _, response = client.api([
        ["Mailbox/set", {"accountId": account, "create": {
            "p": {"name": "Projects", "parentId": None, "isSubscribed": True},
            "c": {"name": "Magpie", "parentId": "#p"}}}, "s1"],
        ["Mailbox/query", {"accountId": account, "filter": {"name": "Magpie"}}, "q"],
        ["Mailbox/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Mailbox/query", "path": "/ids"},
                         "properties": ["name", "parentId"]}, "g"],
    ])
    assert response["methodResponses"][0][0] == "Mailbox/set", response
    set_answer = response["methodResponses"][0][1]
    assert set_answer["oldState"] == state and set_answer["newState"] != state
    parent, child = set_answer["created"]["p"]["id"], set_answer["created"]["c"]["id"]
    assert set_answer["created"]["p"]["totalEmails"] == 0
    got = {m["id"]: m for m in response["methodResponses"][2][1]["list"]}
    assert got[child]["parentId"] == parent
    assert "Projects/Magpie" in imap_list(server)

    # Rename the parent: the child follows, ids stay.
    answer = call(client, "Mailbox/set", {"accountId": account, "update": {parent: {"name": "Work"}}})[1]
    assert answer["updated"] == {parent: None}
    boxes, _ = mailboxes(client, account)
    assert boxes[parent]["name"] == "Work" and boxes[child]["parentId"] == parent
    assert "Work/Magpie" in imap_list(server)

    # Move the child to the top level, then under Archive.
    archive = by_name(boxes, "Archive")["id"]
    call(client, "Mailbox/set", {"accountId": account, "update": {child: {"parentId": None}}})
    boxes, _ = mailboxes(client, account)
    assert boxes[child]["parentId"] is None
    call(client, "Mailbox/set", {"accountId": account, "update": {child: {"parentId": archive}}})
    assert "Archive/Magpie" in imap_list(server)


def test_set_errors_are_the_rfcs(jmap):
    server, client = jmap
    account = account_id(client)
    boxes, _ = mailboxes(client, account)
    inbox, sent = by_name(boxes, "INBOX")["id"], by_name(boxes, "Sent")["id"]
    answer = call(client, "Mailbox/set", {"accountId": account, "create": {
        "dup": {"name": "Sent"},
        "slash": {"name": "a/b"},
        "empty": {"name": ""},
        "orphan": {"name": "x", "parentId": "m999999"},
        "role": {"name": "Other sent", "role": "sent"},
        "counts": {"name": "y", "totalEmails": 5},
    }, "update": {
        inbox: {"name": "Renamed inbox"},
        "m999999": {"name": "z"},
        sent: {"parentId": sent},
    }, "destroy": [inbox, "m999999"]})[1]
    not_created = answer["notCreated"]
    for key in ("dup", "slash", "empty", "orphan", "role", "counts"):
        assert not_created[key]["type"] == "invalidProperties", (key, not_created[key])
    assert not_created["orphan"]["properties"] == ["parentId"]
    assert not_created["role"]["properties"] == ["role"]
    assert answer["notUpdated"][inbox]["type"] == "forbidden"
    assert answer["notUpdated"]["m999999"]["type"] == "notFound"
    assert answer["notUpdated"][sent]["type"] == "invalidProperties"
    assert answer["notDestroyed"][inbox]["type"] == "forbidden"
    assert answer["notDestroyed"]["m999999"]["type"] == "notFound"
    assert answer["created"] is None and answer["destroyed"] is None

    response = call(client, "Mailbox/set", {"accountId": account, "ifInState": "stale", "create": {"a": {"name": "A"}}})
    assert response[0] == "error" and response[1]["type"] == "stateMismatch"


def test_destroy_needs_children_gone_and_on_destroy_remove_emails(jmap):
    server, client = jmap
    account = account_id(client)
    created = call(client, "Mailbox/set", {"accountId": account, "create": {
        "p": {"name": "Old"}, "c": {"name": "Child", "parentId": "#p"}}})[1]["created"]
    parent, child = created["p"]["id"], created["c"]["id"]
    imap = imap_login(server)
    assert imap.append("Old", None, None, b"From: a@b.test\r\nSubject: keep\r\n\r\nbody\r\n")[0] == "OK"
    imap.logout()

    answer = call(client, "Mailbox/set", {"accountId": account, "destroy": [parent]})[1]
    assert answer["notDestroyed"][parent]["type"] == "mailboxHasChild"
    answer = call(client, "Mailbox/set", {"accountId": account, "destroy": [child]})[1]
    assert answer["destroyed"] == [child]
    answer = call(client, "Mailbox/set", {"accountId": account, "destroy": [parent]})[1]
    assert answer["notDestroyed"][parent]["type"] == "mailboxHasEmail"
    answer = call(client, "Mailbox/set", {"accountId": account, "destroy": [parent], "onDestroyRemoveEmails": True})[1]
    assert answer["destroyed"] == [parent]
    assert "Old" not in imap_list(server)


def test_roles_and_subscriptions_are_imaps_special_use_and_lsub(jmap):
    server, client = jmap
    account = account_id(client)
    boxes, _ = mailboxes(client, account)
    archive = by_name(boxes, "Archive")["id"]
    created = call(client, "Mailbox/set", {"accountId": account, "create": {"n": {"name": "Kept"}}})[1]["created"]
    kept = created["n"]["id"]
    answer = call(client, "Mailbox/set", {"accountId": account, "update": {
        archive: {"role": None, "isSubscribed": False}}})[1]
    assert answer["updated"] == {archive: None}
    answer = call(client, "Mailbox/set", {"accountId": account, "update": {kept: {"role": "archive",
                                                                                 "isSubscribed": True}}})[1]
    assert answer["updated"] == {kept: None}
    boxes, _ = mailboxes(client, account)
    assert boxes[kept]["role"] == "archive" and boxes[kept]["isSubscribed"] is True
    assert boxes[archive]["role"] is None and boxes[archive]["isSubscribed"] is False
    imap = imap_login(server)
    _, lines = imap.list()
    kept_line = next(line.decode() for line in lines if line.decode().endswith('Kept') or line.decode().endswith('"Kept"'))
    assert "\\Archive" in kept_line
    _, subscribed = imap.lsub()
    names = [line.decode().rsplit(" ", 1)[-1].strip('"') for line in subscribed]
    assert "Kept" in names and "Archive" not in names
    imap.logout()
