"""Cognito post-authentication trigger: one structured log line per sign-in.

It does not create the Chime AppInstanceUser: the app names those after its own user ids
(CHIME_USER_ID_PREFIX + primary key, chat/backends/chime.py), which only exist once the app has
seen the member, and it provisions them itself when a member is first signed in (the
`user_provisioned` signal). The Cognito `sub` is logged so a sign-in can be matched to the app's
account (its OIDC subject). No e-mail address, name or token is logged.
"""

import json
import time


def handler(event, context):
    attributes = event.get("request", {}).get("userAttributes", {})
    record = {
        "event": "sign_in",
        "trigger": event.get("triggerSource"),
        "user_pool": event.get("userPoolId"),
        "client_id": event.get("callerContext", {}).get("clientId"),
        "sub": attributes.get("sub"),
        "new_device": event.get("request", {}).get("newDeviceUsed", False),
        "at": round(time.time(), 3),
    }
    print(json.dumps(record, sort_keys=True))
    return event
