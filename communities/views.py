"""Pages for the community directory, joining and leaving, invites and community management."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.selectors import me
from communities import policy, selectors, services
from communities.models import Community, Membership
from hobbies.errors import DomainError, Invalid, NotFound
from hobbies.http import domain_errors
from hobbies.parsing import clean_text, parse_count, parse_form_text, parse_id


def directory(request: HttpRequest) -> HttpResponse:
    query = clean_text(request.GET.get("q"), max_length=80)
    tag = clean_text(request.GET.get("tag"), max_length=40)
    communities = selectors.directory(query=query, tag=tag)
    mine = set(selectors.user_communities(me(request)).values_list("id", flat=True))
    return render(
        request,
        "communities/directory.html",
        {
            "communities": communities,
            "q": query,
            "tag": tag,
            "mine": mine,
            # Waiting join requests, for the communities the user answers them in.
            "waiting": selectors.pending_request_counts(me(request)),
        },
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
    return render(request, "communities/community_form.html", {"form": form})


@login_required
@require_POST
@domain_errors
def community_join(request: HttpRequest, slug: str) -> HttpResponse:
    item = selectors.community_for_viewer(me(request), slug)
    if item.is_public:
        services.membership_join(community=item, user=me(request))
        messages.success(request, f"Welcome to \u2068{item.name}\u2069!")
    else:
        services.join_request_create(
            community=item,
            user=me(request),
            message=parse_form_text(
                request.POST.get("message"), "A request message", multiline=True
            )[:280],
        )
        messages.info(request, "Request sent: a moderator will answer it.")
    return redirect(item.get_absolute_url())


@login_required
@require_POST
@domain_errors
def community_leave(request: HttpRequest, slug: str) -> HttpResponse:
    item, _ = selectors.community_for_member(me(request), slug)
    services.membership_leave(community=item, user=me(request))
    messages.info(request, f"You left \u2068{item.name}\u2069.")
    return redirect("directory")


@login_required
@domain_errors
def invite_accept(request: HttpRequest, code: str) -> HttpResponse:
    item, invite = selectors.invite_by_code(code)
    if request.method == "POST":
        services.membership_join_by_invite(code=code, user=me(request))
        messages.success(request, f"Welcome to \u2068{item.name}\u2069!")
        return redirect(item.get_absolute_url())
    if selectors.membership_of(me(request), item) is not None:
        return redirect(item.get_absolute_url())
    # Say why the link no longer works (expired, revoked, used up, or a ban) before asking.
    if invite is not None:
        services.invite_check(invite)
    policy.check_not_banned(me(request), item)
    return render(request, "communities/invite.html", {"community": item, "invite": invite})


class ProfileForm(forms.Form):
    """The community's profile, as owners edit it on the manage page."""

    name = forms.CharField(max_length=80)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea)
    rules = forms.CharField(max_length=4000, required=False, widget=forms.Textarea)
    tags = forms.CharField(max_length=200, required=False)
    visibility = forms.ChoiceField(choices=Community.Visibility.choices)
    avatar = forms.FileField(required=False)
    clear_avatar = forms.BooleanField(required=False)


# How long a new invite link lasts, in minutes ("": no end).
INVITE_DURATIONS = [
    ("30", "30 minutes"),
    ("60", "1 hour"),
    ("1440", "1 day"),
    ("10080", "7 days"),
    ("43200", "30 days"),
    ("", "No end"),
]


def _manage_action(request: HttpRequest, user: User, item: Community, action: str) -> str:
    """Run one action of the manage page; returns what to tell the user."""
    post = request.POST
    if action in ("approve", "reject"):
        services.join_request_decide(
            request=selectors.join_request_for_moderator(user, item, parse_id(post.get("request"))),
            by=user,
            approve=action == "approve",
        )
        return "Request approved." if action == "approve" else "Request rejected."
    if action == "reset_invite":
        services.community_invite_reset(community=item, by=user)
        return "The permanent link was replaced; the old one no longer works."
    if action == "invite_create":
        minutes = post.get("expires", "")
        uses = post.get("max_uses", "")
        invite = services.invite_create(
            community=item,
            by=user,
            expires_in=timedelta(minutes=parse_count(minutes, "expires")) if minutes else None,
            max_uses=parse_count(uses, "max_uses") if uses else None,
        )
        return f"New invite link: {request.build_absolute_uri(invite.get_absolute_url())}"
    if action == "invite_revoke":
        invite = selectors.invite_for_moderator(user, item, parse_id(post.get("invite")))
        services.invite_revoke(invite=invite, by=user)
        return "The invite link was revoked."
    if action == "remove":
        target = selectors.member_of(item, parse_id(post.get("user")))
        services.membership_remove(community=item, user=target, by=user)
        return "Removed."
    if action == "role":
        target = selectors.member_of(item, parse_id(post.get("user")))
        services.membership_set_role(
            community=item, user=target, role=post.get("role", ""), by=user
        )
        return "Role saved."
    if action == "transfer":
        target = selectors.member_of(item, parse_id(post.get("user")))
        if post.get("confirm") != "yes":
            raise Invalid("Tick the box to confirm the transfer.")
        services.community_transfer(community=item, to=target, by=user)
        return f"\u2068{target.display_name}\u2069 now owns \u2068{item.name}\u2069."
    if action == "profile":
        form = ProfileForm(post, request.FILES)
        if not form.is_valid():
            raise Invalid(" ".join(str(e) for errors in form.errors.values() for e in errors))
        data = form.cleaned_data
        services.community_update(
            community=item,
            by=user,
            name=parse_form_text(data["name"], "A name"),
            description=parse_form_text(data["description"], "A description", multiline=True),
            rules=parse_form_text(data["rules"], "The rules", multiline=True),
            tags=data["tags"].split(","),
            visibility=data["visibility"],
            avatar=data["avatar"],
            clear_avatar=data["clear_avatar"],
        )
        return "Community saved."
    raise NotFound("No such action.")


@login_required
@domain_errors
def community_manage(request: HttpRequest, slug: str) -> HttpResponse:
    user = me(request)
    item, membership = selectors.community_for_moderator(user, slug)
    if request.method == "POST":
        done = _manage_action(request, user, item, request.POST.get("action", ""))
        messages.success(request, done)
        return redirect("community_manage", slug=slug)
    return render(
        request,
        "communities/manage.html",
        {
            "community": item,
            "membership": membership,
            "can_own": policy.can_set_roles(user, item),
            "can_edit": policy.can_edit_community(user, item),
            "can_transfer": policy.can_transfer_ownership(user, item),
            "profile_form": ProfileForm(
                initial={
                    "name": item.name,
                    "description": item.description,
                    "rules": item.rules,
                    "tags": ", ".join(t.name for t in item.tags.all()),
                    "visibility": item.visibility,
                }
            ),
            "members": selectors.community_members(item),
            "requests": selectors.pending_join_requests(item),
            "invite_url": request.build_absolute_uri(f"/invite/{item.invite_code}/"),
            "invites": selectors.invites_of(item),
            "durations": INVITE_DURATIONS,
            "roles": Membership.Role.choices,
            "now": timezone.now(),
        },
    )
