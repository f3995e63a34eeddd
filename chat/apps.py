from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Channels, messages and their live delivery."""

    name = "chat"

    def ready(self) -> None:
        from chat import receivers  # noqa: F401 - connects the receivers
