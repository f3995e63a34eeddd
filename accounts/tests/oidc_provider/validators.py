from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class CognitoLikeValidator(OAuth2Validator):
    """ID tokens with the claims Amazon Cognito puts in them."""

    oidc_claim_scope = None  # every claim below, whatever the scopes

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "token_use": "id",
            "cognito:username": user.username,
            "cognito:groups": sorted(group.name for group in user.groups.all()),
            "email": user.email,
            "email_verified": True,
            "given_name": user.first_name,
            "family_name": user.last_name,
        }
