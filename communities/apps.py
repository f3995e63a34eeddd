from django.apps import AppConfig


class CommunitiesConfig(AppConfig):
    """Hobby communities, their memberships, roles and join requests."""

    name = "communities"
    verbose_name = "Hobby communities"
