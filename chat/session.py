import hashlib

from django.conf import settings


def session_hash(session_key: str) -> str:
    """A stand-in for a session key that is safe to put on the channel layer."""
    return hashlib.blake2b(
        session_key.encode(), key=settings.SECRET_KEY.encode()[:64], digest_size=16
    ).hexdigest()
