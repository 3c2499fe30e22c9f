"""Schemathesis hooks for the GraphQL run (SCHEMATHESIS_HOOKS).

Agora's GraphQL is a client of its REST API: a request the API refuses (a
malformed id, a missing role, an unknown line, a shipped order) is a GraphQL
error whose `extensions` carry the REST status (4xx) and a `code`
(BAD_USER_INPUT, FORBIDDEN, NOT_FOUND, CONFLICT, ...). Schemathesis's own
GraphQL server-error check counts every error with a `path` as a server
failure unless its code is one of Apollo's client codes, so a FORBIDDEN or a
NOT_FOUND would read as a crash. This check holds the server to its own
contract instead, which a real failure breaks: no HTTP 5xx, and every error
raised while resolving a field says a 4xx status and is not an internal
error.
"""

import schemathesis


@schemathesis.check
def refusals_are_client_errors(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}")
    payload = response.json()
    if not isinstance(payload, dict):
        raise AssertionError("the answer is not a JSON object")
    for error in payload.get("errors") or []:
        if "path" not in error:
            continue  # refused before it ran: the query's own validation
        extensions = error.get("extensions") or {}
        status = extensions.get("status")
        code = extensions.get("code")
        if code == "INTERNAL_SERVER_ERROR" or not isinstance(status, int) or not 400 <= status < 500:
            raise AssertionError(f"a field failed on the server: {error}")
