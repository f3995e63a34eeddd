"""Input as it arrives in frames, forms, query strings and JSON bodies, parsed once at the edge.

Views and frame handlers parse with these and hand typed values to fetches and services, which
never see raw request data. Each parser either returns the typed value or raises `Invalid` with
a message that names the field.

Frames are JSON, so their numbers must be JSON numbers (`text=False`); forms and query strings
carry digits as text.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence

from hobbies.errors import Invalid


def parse_id(value: object) -> int | None:
    """A positive int, or a string of ASCII digits, as an id; anything else is None.

    For ids looked up by a permission-checked fetch, which reports None as not found.
    `int()` alone would take `True` for 1, `1.9` for 1 and `"²"` for a digit (then fail).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value) or None
    return None


def require_id(value: object, name: str, *, text: bool = True) -> int:
    """An id that must be there and well formed."""
    pk = parse_id(value) if text or not isinstance(value, str) else None
    if pk is None:
        raise Invalid(f"{name} must be an id.")
    return pk


def optional_id(value: object, name: str, *, text: bool = True) -> int | None:
    """An id, or None when absent (None, or "" where text is accepted)."""
    if value is None or (text and value == ""):
        return None
    return require_id(value, name, text=text)


def parse_count(value: object, name: str, *, text: bool = True) -> int:
    """A non-negative integer: a position, a `since`, a limit."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    if text and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    raise Invalid(f"{name} must be a non-negative integer.")


def parse_uuid(value: object, name: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise Invalid(f"{name} must be a UUID.")


def parse_uuid_list(value: object, name: str) -> list[uuid.UUID]:
    """A list of UUIDs; absent (None or "") is the empty list."""
    if value is None or value == "":
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise Invalid(f"{name} must be a list of ids.")
    try:
        return [parse_uuid(item, name) for item in value]
    except Invalid:
        raise Invalid(f"{name} must be a list of ids.") from None


def parse_text(value: object, name: str, *, default: str | None = None) -> str:
    """Text; absent (None) is `default` when one is given."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text.")
    return value


def parse_form_text(value: object, name: str, *, multiline: bool = False) -> str:
    """Text typed into a form field that is stored (a topic, a message to moderators).

    Absent is "". Control characters are refused (PostgreSQL cannot store a NUL, and the others
    have no place in what people read), apart from line breaks and tabs in `multiline` text.
    `name` starts the error: "A topic cannot contain control characters."
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text.")
    allowed = "\n\r\t" if multiline else ""
    if any(ch not in allowed and unicodedata.category(ch) == "Cc" for ch in value):
        raise Invalid(f"{name} cannot contain control characters.")
    return value


def clean_text(value: object, *, max_length: int) -> str:
    """Text only looked up or recorded (a search, a tag, a user agent): control characters are
    dropped rather than refused, then the text is trimmed and cut to `max_length`.

    A NUL would fail the whole query on PostgreSQL. Anything that is not text is "".
    """
    if not isinstance(value, str):
        return ""
    kept = "".join(ch for ch in value[: max_length * 4] if unicodedata.category(ch) != "Cc")
    return kept.strip()[:max_length]


def username_key(value: object) -> str:
    """A username as log-in compares it, folded for case: the key of per-username limits.

    Django's log-in form strips the name and normalizes it with NFKC, so `" carol"`, `"carol\t"`
    and the full-width spelling all try the account `carol`; they must share one counter.
    """
    text = value[:300] if isinstance(value, str) else ""
    folded = unicodedata.normalize("NFKC", text.strip()).strip().casefold()
    # Control characters never make a valid name (the form refuses a NUL); keep them out of keys.
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cc")[:150]
