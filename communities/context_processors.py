from typing import Any

from django.http import HttpRequest

from communities.selectors import user_communities


def site(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "site_name": "Hobbies Community",
        "my_communities": user_communities(user) if user is not None else [],
    }
