from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Community analytics: daily figures rolled up from chat and communities."""

    name = "analytics"
