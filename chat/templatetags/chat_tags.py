from django import template

register = template.Library()


@register.filter
def initials(name: str) -> str:
    """Up to two capital initials for an avatar placeholder: `Alice Smith` -> `AS`."""
    parts = [p for p in str(name).replace("_", " ").replace(".", " ").split() if p]
    if not parts:
        return "?"
    letters = parts[0][0] + (parts[1][0] if len(parts) > 1 else "")
    return letters.upper()
