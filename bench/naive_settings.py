"""Minimal Django settings for `bench/naive_app.py`: nothing but an in-memory channel layer.

The layer is configured like the app's embedded default (`hobbies/settings.py`), so that the
naive/app comparison is about the fan-out pattern, not about buffer sizes.
"""

SECRET_KEY = "bench-naive-app-not-a-secret"  # noqa: S105 - loopback benchmark server only
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS: list[str] = []
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": 10_000, "expiry": 60},
    }
}
