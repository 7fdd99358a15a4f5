"""EmailSubmission (RFC 8621 7) against a real magpied with urllib: the From rules of SMTP submission, the
same queue (a remote recipient appears in `magpie queue`), local delivery, onSuccessUpdateEmail and
onSuccessDestroyEmail, deliveryStatus from the delivery tracker, and the RFC's SetErrors."""
import json

import pytest

from test_jmap import ALICE, BOB, CORE, HTTP_LIMITS, MAIL, Client, account_id

SUBMISSION = "urn:ietf:params:jmap:submission"


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": HTTP_LIMITS})
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


def api(client, calls):
    status, _, response = client.api(calls, using=(CORE, MAIL, SUBMISSION))
    assert status == 200, response
    return response["methodResponses"]


def draft(client, account, boxes, sender, to, subject="Hi"):
    answer = api(client, [["Email/set", {"accountId": account, "create": {"d": {
        "mailboxIds": {boxes["drafts"]: True}, "keywords": {"$draft": True},
        "from": [{"email": sender}], "to": [{"email": address} for address in to], "subject": subject,
        "textBody": [{"partId": "1", "type": "text/plain"}], "bodyValues": {"1": {"value": "Body."}}}}}, "c"]])
    return answer[0][1]["created"]["d"]["id"]


def prepare(client):
    account = account_id(client)
    boxes = {m["role"]: m["id"] for m in api(client, [["Mailbox/get", {"accountId": account}, "m"]])[0][1]["list"]}
    identity = api(client, [["Identity/get", {"accountId": account}, "i"]])[0][1]["list"][0]["id"]
    return account, boxes, identity


def test_local_and_remote_recipients_go_the_submission_way_and_the_draft_moves_to_sent(jmap):
    server, client = jmap
    account, boxes, identity = prepare(client)
    email = draft(client, account, boxes, ALICE, [BOB, "someone@remote.test"], "Status")
    responses = api(client, [["EmailSubmission/set", {
        "accountId": account, "create": {"s": {"identityId": identity, "emailId": email}},
        "onSuccessUpdateEmail": {"#s": {f"mailboxIds/{boxes['drafts']}": None, f"mailboxIds/{boxes['sent']}": True,
                                        "keywords/$draft": None}}}, "c"]])
    created = responses[0][1]["created"]["s"]
    assert created["undoStatus"] == "final"
    assert responses[1][0] == "Email/set" and responses[1][1]["updated"] == {email: None}
    got = api(client, [["Email/get", {"accountId": account, "ids": [email], "properties": ["mailboxIds", "keywords"]}, "g"]])
    assert got[0][1]["list"][0]["mailboxIds"] == {boxes["sent"]: True} and got[0][1]["list"][0]["keywords"] == {}
    # Bob got it locally; the remote recipient is in the one outgoing queue.
    assert b"Subject: Status" in server.export(BOB, uid=1)
    assert "someone@remote.test" in server.magpie("queue", "list", "--all").stdout.decode()
    status = api(client, [["EmailSubmission/get", {"accountId": account, "ids": [created["id"]]}, "g"]])[0][1]
    delivery = status["list"][0]["deliveryStatus"]
    assert delivery[BOB]["delivered"] == "yes"
    # The queue has it: still waiting, or already refused (remote.test does not resolve here), with the
    # reason the delivery tracker keeps.
    remote = delivery["someone@remote.test"]
    assert remote["delivered"] in ("queued", "no") and remote["smtpReply"]
    assert status["list"][0]["envelope"]["mailFrom"]["email"] == ALICE
    query = api(client, [["EmailSubmission/query", {"accountId": account, "filter": {"emailIds": [email]}}, "q"]])
    assert query[0][1]["ids"] == [created["id"]]


def test_from_must_be_the_users_and_errors_are_the_rfcs(jmap):
    server, client = jmap
    account, boxes, identity = prepare(client)
    spoofed = draft(client, account, boxes, BOB, ["x@remote.test"])
    nobody = draft(client, account, boxes, ALICE, [])
    fine = draft(client, account, boxes, ALICE, ["x@remote.test"])
    answer = api(client, [["EmailSubmission/set", {"accountId": account, "create": {
        "spoof": {"identityId": identity, "emailId": spoofed},
        "none": {"identityId": identity, "emailId": nobody},
        "mailfrom": {"identityId": identity, "emailId": fine,
                     "envelope": {"mailFrom": {"email": BOB}, "rcptTo": [{"email": "x@remote.test"}]}},
        "badrcpt": {"identityId": identity, "emailId": fine,
                    "envelope": {"mailFrom": {"email": ALICE}, "rcptTo": [{"email": "not an address"}]}},
        "noidentity": {"identityId": "i999", "emailId": fine},
        "noemail": {"identityId": identity, "emailId": "e999999"}}}, "c"]])[0][1]
    errors = {key: value["type"] for key, value in answer["notCreated"].items()}
    assert errors == {"spoof": "forbiddenFrom", "none": "noRecipients", "mailfrom": "forbiddenMailFrom",
                      "badrcpt": "invalidRecipients", "noidentity": "invalidProperties", "noemail": "invalidProperties"}
    assert answer["created"] is None
    assert "x@remote.test" not in server.magpie("queue", "list", "--all").stdout.decode()


def test_on_success_destroy_email_and_changes(jmap):
    server, client = jmap
    account, boxes, identity = prepare(client)
    state = api(client, [["EmailSubmission/get", {"accountId": account, "ids": []}, "g"]])[0][1]["state"]
    email = draft(client, account, boxes, ALICE, [BOB])
    responses = api(client, [["EmailSubmission/set", {
        "accountId": account, "create": {"s": {"identityId": identity, "emailId": email}},
        "onSuccessDestroyEmail": ["#s"]}, "c"]])
    assert responses[1][0] == "Email/set" and responses[1][1]["destroyed"] == [email]
    got = api(client, [["Email/get", {"accountId": account, "ids": [email]}, "g"]])
    assert got[0][1]["notFound"] == [email]
    changes = api(client, [["EmailSubmission/changes", {"accountId": account, "sinceState": state}, "c"]])[0][1]
    assert changes["created"] == [responses[0][1]["created"]["s"]["id"]]
    cancel = api(client, [["EmailSubmission/set", {"accountId": account, "update": {
        changes["created"][0]: {"undoStatus": "canceled"}}}, "c"]])[0][1]
    assert cancel["notUpdated"][changes["created"][0]]["type"] == "cannotUnsend"


def test_recipients_beyond_the_configured_bound_are_too_many_recipients(make_server):
    """[http] max_submission_recipients (was a constant of the code): more rcptTo addresses than it get the
    SetError tooManyRecipients (RFC 8621 7.5), as many are accepted."""
    server = make_server(name="bounded", sections={"http": dict(HTTP_LIMITS, max_submission_recipients=2)})
    client = Client(server)
    account, boxes, identity = prepare(client)
    email = draft(client, account, boxes, ALICE, ["x@remote.test"])
    envelope = lambda n: {"mailFrom": {"email": ALICE},
                          "rcptTo": [{"email": f"r{i}@remote.test"} for i in range(n)]}
    answer = api(client, [["EmailSubmission/set", {"accountId": account, "create": {
        "three": {"identityId": identity, "emailId": email, "envelope": envelope(3)},
        "two": {"identityId": identity, "emailId": email, "envelope": envelope(2)}}}, "c"]])[0][1]
    assert answer["notCreated"]["three"]["type"] == "tooManyRecipients"
    assert "two" in answer["created"]
