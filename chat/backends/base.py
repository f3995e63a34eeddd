from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hobbies.errors import DomainError, HeldForReview

if TYPE_CHECKING:
    from accounts.models import User
    from chat.models import Channel, Message


class MessagingUnavailable(DomainError):
    """The messaging service did not answer (or kept throttling): nothing was changed, and the
    same request may be sent again (a send keeps its `client_id`, so a retry is one message)."""

    code = "messaging_unavailable"
    status = 503


class MessageDenied(DomainError):
    """The messaging service refused the message (Chime status DENIED or FAILED): nothing was
    stored, and only its author hears of it."""

    code = "message_denied"
    status = 422


class MessagePending(HeldForReview):
    """The messaging service holds the message while a channel flow processes it (Chime status
    PENDING). Raised by the backend inside the send's transaction, so the message row and its
    position are rolled back; `message_send` then keeps it as a `HeldMessage` (kind `flow`),
    sets `held`, and raises this again for the caller to tell the author (docs/chime.md)."""

    code = "message_pending"
    status = 202

    def __init__(self, detail: str, external_id: str) -> None:
        super().__init__(detail, 0)
        self.external_id = external_id
        self.extra = {"status": "pending"}

    def held_as(self, held: int) -> None:
        self.held = held
        self.extra = {"held": held, "status": "pending"}


class MessagingBackend(Protocol):
    """What the chat services need from a messaging service, in chat terms.

    Every method is called inside the transaction of the change it mirrors, so a failing remote
    call (raising a `DomainError`) rolls the change back. Each method that creates something
    returns the remote reference it created (an ARN, a message id), or "" when there is none.
    """

    name: str

    def ensure_user(self, user: User) -> str: ...

    def create_channel(self, channel: Channel) -> str: ...

    def update_channel(self, channel: Channel) -> None: ...

    def archive_channel(self, channel: Channel) -> None: ...

    def add_member(self, channel: Channel, user: User) -> None: ...

    def remove_member(self, channel: Channel, user: User) -> None: ...

    def add_moderator(self, channel: Channel, user: User) -> None: ...

    def remove_moderator(self, channel: Channel, user: User) -> None: ...

    def ban(self, channel: Channel, user: User) -> None: ...

    def unban(self, channel: Channel, user: User) -> None: ...

    def send_message(self, message: Message) -> str: ...

    def edit_message(self, message: Message) -> None: ...

    def redact_message(self, message: Message) -> None:
        """A moderator removed the message: its content goes, the message stays in place."""
        ...

    def delete_message(self, message: Message) -> None: ...

    def mark_read(self, channel: Channel, user: User, message_id: int) -> None: ...

    def history(
        self, channel: Channel, *, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages older than `before`, oldest first, and whether there are more."""
        ...
