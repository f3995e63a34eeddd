"""Domain errors: raised by services and fetches, mapped to HTTP statuses and `error` frames.
And `CheckFailed`, which the integrations' deployment checks raise for `manage.py doctor`."""

from __future__ import annotations

from datetime import datetime


class DomainError(Exception):
    code = "invalid"
    status = 400

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.default_detail()
        # Fields the error frame and the JSON error carry besides code and detail (`until`).
        self.extra: dict[str, object] = {}

    def default_detail(self) -> str:
        return self.code.replace("_", " ").capitalize() + "."


class Invalid(DomainError):
    code = "invalid"
    status = 400


class TooLong(DomainError):
    code = "too_long"
    status = 400


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Restricted(Forbidden):
    """A moderator's timeout or ban stops the user; `until` (ISO 8601, or None: no end) says
    when it ends, for the error frame and the JSON error alike."""

    def __init__(self, detail: str = "", until: datetime | None = None) -> None:
        super().__init__(detail)
        self.until = until
        self.extra = {"until": until.isoformat() if until is not None else None}


class TimedOut(Restricted):
    code = "timed_out"


class Banned(Restricted):
    code = "banned"


class SlowMode(DomainError):
    """The channel's slow mode: the member may post again at `until`."""

    code = "slow_mode"
    status = 429

    def __init__(self, detail: str, until: datetime) -> None:
        super().__init__(detail)
        self.until = until
        self.extra = {"until": until.isoformat()}


class Blocked(DomainError):
    """The community's word filter refused the text."""

    code = "blocked"
    status = 400


class HeldForReview(DomainError):
    """Not an error to the author, but not a message yet: the word filter held it for a
    moderator, who approves (it then gets its position) or rejects it."""

    code = "pending_review"
    status = 202

    def __init__(self, detail: str, held: int) -> None:
        super().__init__(detail)
        self.held = held
        self.extra = {"held": held}


class Gone(DomainError):
    """Something that existed and may no longer be used (an expired or revoked invite)."""

    code = "gone"
    status = 410


class Conflict(DomainError):
    code = "conflict"
    status = 409


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429

    def __init__(self, detail: str = "", retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds until trying again can succeed, when known


class TooLarge(DomainError):
    code = "too_large"
    status = 413


class QuotaExceeded(DomainError):
    code = "quota_exceeded"
    status = 413


class UnsupportedType(DomainError):
    code = "unsupported_type"
    status = 415


class UploadIncomplete(DomainError):
    code = "upload_incomplete"
    status = 409


class StorageUnavailable(DomainError):
    code = "storage_unavailable"
    status = 503


class SignInFailed(DomainError):
    """A sign-in that did not happen. Shown on the sign-in error page, with a way back."""

    code = "sign_in_failed"
    status = 400

    def __init__(self, detail: str = "", reason: str = "") -> None:
        super().__init__(detail)
        self.reason = reason or self.detail


class SignInIncomplete(SignInFailed):
    """The step run after every sign-in failed: the user was signed out again."""

    code = "sign_in_incomplete"
    status = 503


class CheckFailed(Exception):
    """A deployment check (`manage.py doctor`) found a problem: what is wrong, and `fix`, what
    to do about it in the deployment's terms (the address tried, the setting to change)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix
