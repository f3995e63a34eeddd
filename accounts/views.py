"""Pages for accounts: sign-up, log-in (password or provider), log-out and the profile."""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST
from django.views.generic import View
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from accounts import oidc, services
from accounts.selectors import me
from hobbies import ratelimit
from hobbies.errors import DomainError, Forbidden, SignInFailed
from hobbies.http import client_ip
from hobbies.parsing import username_key

# --- Accounts -------------------------------------------------------------------------------


class SignupForm(forms.Form):
    username = forms.CharField(max_length=30)
    display_name = forms.CharField(max_length=64, required=False)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("directory")
    if not settings.LOCAL_LOGIN_ENABLED:
        error = Forbidden(f"Accounts here are made by signing in with {settings.OIDC_LABEL}.")
        return render(request, "registration/sign_in_error.html", {"error": error}, status=403)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ratelimit.hit("signup", client_ip(request), settings.RATE_LIMIT_SIGNUP)
            user = services.user_create(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                email=form.cleaned_data["email"],
                display_name=form.cleaned_data["display_name"],
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("directory")
    return render(request, "registration/signup.html", {"form": form})


class RateLimitedLoginView(LoginView):
    """Django's log-in, with attempts limited per client address and per username."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "local_login_enabled": settings.LOCAL_LOGIN_ENABLED,
            "oidc_enabled": oidc.enabled(),
            "oidc_label": settings.OIDC_LABEL,
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.LOCAL_LOGIN_ENABLED:
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, f"Password log-in is off: sign in with {settings.OIDC_LABEL}.")
            return self.render_to_response(self.get_context_data(form=form), status=403)
        try:
            ratelimit.hit("login-ip", client_ip(request), settings.RATE_LIMIT_LOGIN)
            username = username_key(request.POST.get("username"))
            ratelimit.hit("login-user", username, settings.RATE_LIMIT_LOGIN)
        except DomainError as exc:
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, exc.detail)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)


def admin_login(request: HttpRequest) -> HttpResponse:
    """Django admin's log-in page, replaced by the site's own, coming back to admin."""
    if request.user.is_authenticated:
        # Signed in, but not staff: say so rather than asking to sign in again.
        error = Forbidden("Your account does not have access to the administration.")
        return render(request, "error.html", {"error": error}, status=403)
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = ""
    return redirect(f"{reverse('login')}?{urlencode({'next': target or '/admin/'})}")


class OIDCLoginView(OIDCAuthenticationRequestView):
    """Start a sign-in at the provider: authorization code flow with PKCE (S256), `state` and
    `nonce` kept in the session (mozilla-django-oidc)."""

    def __init__(self, **kwargs: Any) -> None:
        # The parent reads the endpoint from settings; ours comes from the provider config.
        View.__init__(self, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc.enabled():
            raise Http404("Signing in with a provider is not set up here.")
        config = oidc.provider()
        self.OIDC_OP_AUTH_ENDPOINT = config.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = config.client_id
        return super().get(request)


class OIDCCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with a code (or an error)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc.enabled():
            raise Http404("Signing in with a provider is not set up here.")
        # Each state is good for one try, whatever its outcome (no replays).
        states = request.session.get("oidc_states")
        states = states if isinstance(states, dict) else {}
        entry = states.pop(str(request.GET.get("state", "")), None)
        request.session["oidc_states"] = states
        error = str(request.GET.get("error", ""))[:100]
        if error == "access_denied":
            raise SignInFailed("Sign-in was cancelled, so you were not signed in.", reason=error)
        if error:
            raise SignInFailed(
                f"The sign-in service answered with an error ({error}).", reason=error
            )
        if not isinstance(entry, dict):
            raise SignInFailed(
                "This sign-in link has expired or was already used. Please start again.",
                reason="unknown state",
            )
        age = time.time() - float(entry.get("added_on", 0))
        if age > settings.OIDC_STATE_MAX_AGE_SECONDS:
            raise SignInFailed(
                "This sign-in took too long and has expired. Please start again.",
                reason="state expired",
            )
        if not request.GET.get("code"):
            raise SignInFailed("The sign-in service sent no authorization code.", reason="no code")
        user = auth.authenticate(
            request, nonce=entry.get("nonce"), code_verifier=entry.get("code_verifier")
        )
        if user is None:
            raise oidc.TokenRejected(reason="no user")
        if not user.is_active:
            raise SignInFailed("This account is disabled.", reason="inactive user")
        self.user = user
        return self.login_success()

    def login_success(self) -> HttpResponse:
        # Always a fresh log-in: the session key rotates and the post-login step runs.
        auth.login(self.request, self.user)
        next_url = self.request.session.pop("oidc_login_next", None)
        return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """End the session (closing its sockets); after a provider sign-in, end the provider's too."""
    destination: str | None = None
    signed_in_by_provider = request.session.get(auth.BACKEND_SESSION_KEY) == settings.OIDC_BACKEND
    if request.user.is_authenticated and signed_in_by_provider and oidc.enabled():
        try:
            destination = oidc.logout_url(request, id_token=request.session.get("oidc_id_token"))
        except SignInFailed:
            destination = None  # provider unreachable: at least end our own session
    auth.logout(request)
    return HttpResponseRedirect(destination or resolve_url(settings.LOGOUT_REDIRECT_URL))


class ProfileForm(forms.Form):
    display_name = forms.CharField(max_length=64, required=False)
    bio = forms.CharField(max_length=280, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    hobbies = forms.CharField(max_length=200, required=False)
    avatar = forms.FileField(required=False)
    clear_avatar = forms.BooleanField(required=False)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    current = services.profile_ensure(user=me(request))
    initial = {"display_name": current.display_name, "bio": current.bio, "hobbies": current.hobbies}
    form = ProfileForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.profile_update(
                user=me(request),
                display_name=form.cleaned_data["display_name"],
                bio=form.cleaned_data["bio"],
                hobbies=form.cleaned_data["hobbies"],
                avatar=form.cleaned_data["avatar"],
                clear_avatar=form.cleaned_data["clear_avatar"],
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
        else:
            messages.success(request, "Profile saved.")
            return redirect("profile")
    return render(request, "accounts/profile.html", {"form": form, "profile": current})
