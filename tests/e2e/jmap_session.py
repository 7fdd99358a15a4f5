"""The JMAP session resource (RFC 8620 2), as the e2e tests read it whatever HTTP client they use."""
import json

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"


def session_of(status, body):
    """The session object from a GET /jmap/session answer, which must be 200."""
    assert status == 200, (status, body[:300])
    return json.loads(body)


def primary_account(status, body, capability=MAIL):
    """The account id the session names for `capability` (primaryAccounts)."""
    return session_of(status, body)["primaryAccounts"][capability]
