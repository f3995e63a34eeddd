"""People: users, their profiles, their provider identities and the sign-in audit log.

The app label stays `hobbies` (and `AUTH_USER_MODEL` `hobbies.User`), so existing databases keep
their tables and migration history."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class User(AbstractUser):
    """A person with an account. Profile details live on `Profile`."""

    @property
    def display_name(self) -> str:
        profile = getattr(self, "profile", None)
        if profile is not None and profile.display_name:
            return str(profile.display_name)
        return str(self.get_username())


class Profile(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(max_length=64, blank=True)
    bio = models.CharField(max_length=280, blank=True)
    avatar = models.ImageField(upload_to="avatars/%Y/%m/", blank=True)
    hobbies = models.CharField(
        max_length=200, blank=True, help_text="Comma-separated hobbies, e.g. climbing, chess."
    )

    def __str__(self) -> str:
        return self.display_name or self.user.get_username()

    @property
    def hobby_list(self) -> list[str]:
        return [h.strip() for h in self.hobbies.split(",") if h.strip()]


class Identity(models.Model):
    """A user's account at an OpenID Connect provider: the provider's `sub` within its issuer.

    Users signing in through a provider are found by this pair only, never by email address.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="identity_unique"),
            models.UniqueConstraint(fields=["user", "issuer"], name="identity_one_per_issuer"),
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"


class SignIn(models.Model):
    """One successful sign-in, for the audit log."""

    class Method(models.TextChoices):
        PASSWORD = "password", "Password"
        OIDC = "oidc", "OpenID Connect"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sign_ins")
    method = models.CharField(max_length=10, choices=Method.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["user", "-at"], name="signin_user_at")]
        constraints = [
            models.CheckConstraint(
                condition=Q(method__in=["password", "oidc"]), name="signin_method_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} by {self.method} at {self.at:%Y-%m-%d %H:%M}"
