"""Identity (RFC 8621 6) and VacationResponse (RFC 8621 8) against a real magpied with urllib: one
identity per address and alias, forbiddenFrom for others, changes, and the vacation singleton."""
import pytest

from test_jmap import ALICE, BOB, CORE, HTTP_LIMITS, MAIL, Client, account_id

SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": HTTP_LIMITS})
    server.magpie("alias", "add", "postmaster@example.test", ALICE)
    return server, Client(server)


def call(client, name, arguments, using=(CORE, MAIL, SUBMISSION, VACATION)):
    status, _, response = client.api([[name, arguments, "c"]], using=using)
    assert status == 200, response
    return response["methodResponses"][0]


def test_session_advertises_submission_and_vacation(jmap):
    _, client = jmap
    session = client.session()
    account = account_id(client)
    assert SUBMISSION in session["capabilities"] and VACATION in session["capabilities"]
    assert session["primaryAccounts"][SUBMISSION] == account
    assert session["accounts"][account]["accountCapabilities"][SUBMISSION]["maxDelayedSend"] == 0


def test_every_sender_address_has_an_identity_that_cannot_be_destroyed(jmap):
    _, client = jmap
    account = account_id(client)
    answer = call(client, "Identity/get", {"accountId": account})[1]
    emails = sorted(i["email"] for i in answer["list"])
    assert emails == [ALICE, "postmaster@example.test"]
    assert all(i["mayDelete"] is False for i in answer["list"])
    first = answer["list"][0]["id"]
    again = call(client, "Identity/get", {"accountId": account, "ids": [first, "i999"]})[1]
    assert [i["id"] for i in again["list"]] == [first] and again["notFound"] == ["i999"]
    assert again["state"] == answer["state"]
    result = call(client, "Identity/set", {"accountId": account, "destroy": [first]})[1]
    assert result["notDestroyed"][first]["type"] == "forbidden"


def test_identities_are_created_updated_destroyed_and_changes_report_them(jmap):
    _, client = jmap
    account = account_id(client)
    state = call(client, "Identity/get", {"accountId": account})[1]["state"]
    answer = call(client, "Identity/set", {"accountId": account, "create": {
        "work": {"email": ALICE, "name": "Alice at work", "textSignature": "-- \nAlice",
                 "replyTo": [{"name": "Desk", "email": "desk@example.test"}]},
        "spoof": {"email": BOB},
        "bad": {"email": ALICE, "replyTo": "nope"},
    }})[1]
    assert answer["notCreated"]["spoof"]["type"] == "forbiddenFrom"
    assert answer["notCreated"]["bad"] == {"type": "invalidProperties", "properties": ["replyTo"]}
    work = answer["created"]["work"]["id"]
    assert answer["created"]["work"]["mayDelete"] is True
    changes = call(client, "Identity/changes", {"accountId": account, "sinceState": state})[1]
    assert changes["created"] == [work] and changes["updated"] == [] and changes["destroyed"] == []
    mid = changes["newState"]

    answer = call(client, "Identity/set", {"accountId": account, "update": {
        work: {"name": "Alice (work)"}}})[1]
    assert answer["updated"] == {work: None}
    answer = call(client, "Identity/set", {"accountId": account, "update": {work: {"email": BOB}}})[1]
    assert answer["notUpdated"][work]["type"] == "invalidProperties"
    got = call(client, "Identity/get", {"accountId": account, "ids": [work]})[1]["list"][0]
    assert got["name"] == "Alice (work)" and got["textSignature"] == "-- \nAlice"
    assert got["replyTo"] == [{"name": "Desk", "email": "desk@example.test"}]
    changes = call(client, "Identity/changes", {"accountId": account, "sinceState": mid})[1]
    assert changes["updated"] == [work]

    answer = call(client, "Identity/set", {"accountId": account, "destroy": [work]})[1]
    assert answer["destroyed"] == [work]
    changes = call(client, "Identity/changes", {"accountId": account, "sinceState": mid})[1]
    assert changes["destroyed"] == [work] and changes["updated"] == []
    # Created and destroyed since the state: not reported at all.
    changes = call(client, "Identity/changes", {"accountId": account, "sinceState": state})[1]
    assert changes["created"] == [] and changes["destroyed"] == []
    error = call(client, "Identity/changes", {"accountId": account, "sinceState": "999"})
    assert error[0] == "error" and error[1]["type"] == "cannotCalculateChanges"


def test_identity_methods_need_the_submission_capability(jmap):
    _, client = jmap
    response = call(client, "Identity/get", {"accountId": account_id(client)}, using=(CORE, MAIL))
    assert response[0] == "error" and response[1]["type"] == "unknownMethod"


def test_vacation_response_is_a_stored_singleton(jmap):
    server, client = jmap
    account = account_id(client)
    answer = call(client, "VacationResponse/get", {"accountId": account})[1]
    assert answer["list"] == [{"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
                               "subject": None, "textBody": None, "htmlBody": None}]
    state = answer["state"]
    answer = call(client, "VacationResponse/set", {"accountId": account, "update": {"singleton": {
        "isEnabled": True, "fromDate": "2026-12-20T00:00:00Z", "subject": "Away", "textBody": "Back in January."}},
        "create": {"x": {}}, "destroy": ["singleton"]})[1]
    assert answer["updated"] == {"singleton": None}
    assert answer["notCreated"]["x"]["type"] == "singleton"
    assert answer["notDestroyed"]["singleton"]["type"] == "singleton"
    assert answer["oldState"] == state and answer["newState"] != state
    answer = call(client, "VacationResponse/set", {"accountId": account, "update": {
        "singleton": {"toDate": "next week"}, "other": {"isEnabled": False}}})[1]
    assert answer["notUpdated"]["singleton"] == {"type": "invalidProperties", "properties": ["toDate"]}
    assert answer["notUpdated"]["other"]["type"] == "notFound"
    server.kill()
    server.start()
    client = Client(server)
    got = call(client, "VacationResponse/get", {"accountId": account, "ids": ["singleton", "x"]})[1]
    assert got["list"][0]["isEnabled"] is True and got["list"][0]["subject"] == "Away"
    assert got["list"][0]["fromDate"] == "2026-12-20T00:00:00Z" and got["list"][0]["toDate"] is None
    assert got["notFound"] == ["x"]
