"""Ids as they arrive in frames, forms and URLs."""


def parse_id(value: object) -> int | None:
    """A positive int, or a string of ASCII digits, as an id; anything else is None.

    `int()` alone would take `True` for 1 and `"²"` for a digit (then fail).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
