from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from accounts.models import User
    from chat.models import Channel, Message


class MessagingBackend(Protocol):
    """What the chat services need from a messaging service, in chat terms.

    Each method returns the remote reference it created (an ARN, say), or "" when there is none.
    """

    name: str

    def ensure_user(self, user: User) -> str: ...

    def create_channel(self, channel: Channel) -> str: ...

    def add_member(self, channel: Channel, user: User) -> None: ...

    def remove_member(self, channel: Channel, user: User) -> None: ...

    def send_message(self, message: Message) -> str: ...

    def edit_message(self, message: Message) -> None: ...

    def delete_message(self, message: Message) -> None: ...

    def history(
        self, channel: Channel, *, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages older than `before`, oldest first, and whether there are more."""
        ...
