"""Pages for accounts, the community directory and community management."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST
from django.views.generic import View
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from hobbies import oidc, ratelimit, selectors, services
from hobbies.errors import DomainError, Forbidden, NotFound, SignInFailed
from hobbies.ids import parse_id
from hobbies.models import Community, JoinRequest, Membership, User


def me(request: HttpRequest) -> User:
    """The requesting user, typed as ours (anonymous users have `is_authenticated` False)."""
    return cast(User, request.user)


def domain_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Show a domain error as a message on the page the user came from (or a 404 page)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            return render(request, "error.html", {"error": exc}, status=404)
        except DomainError as exc:
            if request.method == "POST":
                messages.error(request, exc.detail)
                return redirect(request.POST.get("next") or request.path)
            return render(request, "error.html", {"error": exc}, status=exc.status)

    return wrapper


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
            ratelimit.hit("signup", _client_ip(request), settings.RATE_LIMIT_SIGNUP)
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
            ratelimit.hit("login-ip", _client_ip(request), settings.RATE_LIMIT_LOGIN)
            username = str(request.POST.get("username", ""))[:150].lower()
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


def _client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", "unknown"))


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
    return render(request, "hobbies/profile.html", {"form": form, "profile": current})


# --- Directory and communities --------------------------------------------------------------


def directory(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:80]
    tag = request.GET.get("tag", "").strip()[:40]
    communities = selectors.directory(query=query, tag=tag)
    mine = set(selectors.user_communities(me(request)).values_list("id", flat=True))
    return render(
        request,
        "hobbies/directory.html",
        {"communities": communities, "q": query, "tag": tag, "mine": mine},
    )


class CommunityForm(forms.Form):
    name = forms.CharField(max_length=80)
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    tags = forms.CharField(
        max_length=200, required=False, help_text="Comma-separated, e.g. film, darkroom"
    )
    visibility = forms.ChoiceField(choices=Community.Visibility.choices)


@login_required
@domain_errors
def community_new(request: HttpRequest) -> HttpResponse:
    form = CommunityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            community = services.community_create(
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                tags=form.cleaned_data["tags"].split(","),
                visibility=form.cleaned_data["visibility"],
                by=me(request),
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
        else:
            return redirect(community.get_absolute_url())
    return render(request, "hobbies/community_form.html", {"form": form})


@domain_errors
def community(request: HttpRequest, slug: str) -> HttpResponse:
    from chat.selectors import channels_for_user

    item = selectors.community_for_viewer(me(request), slug)
    membership = selectors.membership_of(me(request), item)
    context: dict[str, Any] = {"community": item, "membership": membership}
    if membership is not None:
        channels = channels_for_user(me(request), item.id)
        if channels and request.GET.get("about") is None:
            general = next((c for c in channels if c["name"] == "general"), channels[0])
            return redirect(general["url"])
        context["channels"] = channels
    elif request.user.is_authenticated:
        context["pending_request"] = JoinRequest.objects.filter(
            community=item, user=request.user, status=JoinRequest.Status.PENDING
        ).exists()
    context["member_count"] = item.memberships.count()
    return render(request, "hobbies/community.html", context)


@login_required
@require_POST
@domain_errors
def community_join(request: HttpRequest, slug: str) -> HttpResponse:
    item = selectors.community_for_viewer(me(request), slug)
    if item.is_public:
        services.membership_join(community=item, user=me(request))
        messages.success(request, f"Welcome to {item.name}!")
    else:
        services.join_request_create(
            community=item,
            user=me(request),
            message=request.POST.get("message", "")[:280],
        )
        messages.info(request, "Request sent: a moderator will answer it.")
    return redirect(item.get_absolute_url())


@login_required
@require_POST
@domain_errors
def community_leave(request: HttpRequest, slug: str) -> HttpResponse:
    item, _ = selectors.community_for_member(me(request), slug)
    services.membership_leave(community=item, user=me(request))
    messages.info(request, f"You left {item.name}.")
    return redirect("directory")


@login_required
@domain_errors
def invite_accept(request: HttpRequest, code: str) -> HttpResponse:
    item = Community.objects.filter(invite_code=code).first()
    if item is None:
        raise NotFound("This invite link is not valid any more.")
    if request.method == "POST":
        services.membership_join_by_invite(code=code, user=me(request))
        messages.success(request, f"Welcome to {item.name}!")
        return redirect(item.get_absolute_url())
    return render(request, "hobbies/invite.html", {"community": item})


@login_required
@domain_errors
def community_manage(request: HttpRequest, slug: str) -> HttpResponse:
    item, membership = selectors.community_for_moderator(me(request), slug)
    if request.method == "POST":
        action = request.POST.get("action")
        if action in ("approve", "reject"):
            join_request = JoinRequest.objects.filter(
                community=item, id=_post_id(request, "request")
            ).first()
            if join_request is None:
                raise NotFound("No such request.")
            services.join_request_decide(
                request=join_request,
                by=me(request),
                approve=action == "approve",
            )
        elif action == "reset_invite":
            services.community_invite_reset(community=item, by=me(request))
        elif action == "remove":
            target = User.objects.filter(id=_post_id(request, "user")).first()
            if target is None:
                raise NotFound("No such member.")
            services.membership_remove(community=item, user=target, by=me(request))
        elif action == "role":
            target = User.objects.filter(id=_post_id(request, "user")).first()
            if target is None:
                raise NotFound("No such member.")
            services.membership_set_role(
                community=item,
                user=target,
                role=request.POST.get("role", ""),
                by=me(request),
            )
        elif action == "channel":
            from chat.services import channel_create

            channel_create(
                community=item,
                name=request.POST.get("name", ""),
                topic=request.POST.get("topic", ""),
                kind=request.POST.get("kind", "open"),
                by=me(request),
            )
        messages.success(request, "Done.")
        return redirect("community_manage", slug=slug)
    return render(
        request,
        "hobbies/manage.html",
        {
            "community": item,
            "membership": membership,
            "members": selectors.community_members(item),
            "requests": selectors.pending_join_requests(item),
            "invite_url": request.build_absolute_uri(f"/invite/{item.invite_code}/"),
            "roles": Membership.Role.choices,
        },
    )


def _post_id(request: HttpRequest, name: str) -> int:
    pk = parse_id(request.POST.get(name, ""))
    if pk is None:
        raise NotFound(f"No such {name}.")
    return pk


# --- Health ---------------------------------------------------------------------------------


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


async def _layer_roundtrip(layer: Any) -> None:
    import asyncio

    name = await layer.new_channel("readyz.")
    await layer.send(name, {"type": "probe"})
    await asyncio.wait_for(layer.receive(name), timeout=2)


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    from asgiref.sync import async_to_sync

    from chat.hub import channel_layer

    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        async_to_sync(_layer_roundtrip)(channel_layer())
        checks["channel_layer"] = "ok"
    except Exception as exc:
        checks["channel_layer"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503
    )
