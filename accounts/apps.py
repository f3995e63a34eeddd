from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, profiles, provider identities and the sign-in audit log.

    The label stays `hobbies`, the app's name before the project package and the domain apps
    were separated: tables, migration history and `AUTH_USER_MODEL` ("hobbies.User") keep it.
    """

    name = "accounts"
    label = "hobbies"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import receivers  # noqa: F401 - connects the receivers
