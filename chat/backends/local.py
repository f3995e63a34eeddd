from __future__ import annotations

from accounts.models import User
from chat.models import Channel, Message
from chat.selectors import messages_page


class LocalBackend:
    """The embedded default: the database is the whole messaging service."""

    name = "local"

    def ensure_user(self, user: User) -> str:
        return ""

    def create_channel(self, channel: Channel) -> str:
        return ""

    def update_channel(self, channel: Channel) -> None:
        return None

    def archive_channel(self, channel: Channel) -> None:
        return None

    def add_member(self, channel: Channel, user: User) -> None:
        return None

    def remove_member(self, channel: Channel, user: User) -> None:
        return None

    def add_moderator(self, channel: Channel, user: User) -> None:
        return None

    def remove_moderator(self, channel: Channel, user: User) -> None:
        return None

    def ban(self, channel: Channel, user: User) -> None:
        return None

    def unban(self, channel: Channel, user: User) -> None:
        return None

    def send_message(self, message: Message) -> str:
        return ""

    def edit_message(self, message: Message) -> None:
        return None

    def redact_message(self, message: Message) -> None:
        return None

    def delete_message(self, message: Message) -> None:
        return None

    def mark_read(self, channel: Channel, user: User, message_id: int) -> None:
        return None

    def history(
        self, channel: Channel, *, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        return messages_page(channel, before=before, limit=limit)
