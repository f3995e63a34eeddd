from django.apps import AppConfig


class HobbiesConfig(AppConfig):
    name = "hobbies"
    verbose_name = "Hobby communities"

    def ready(self) -> None:
        from hobbies import signals  # noqa: F401
