"""Pages for the community directory, joining and leaving, invites and community management."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.selectors import me
from communities import policy, selectors, services
from communities.models import Community, Membership
from hobbies.errors import DomainError, NotFound
from hobbies.http import domain_errors
from hobbies.parsing import clean_text, parse_form_text, parse_id


def directory(request: HttpRequest) -> HttpResponse:
    query = clean_text(request.GET.get("q"), max_length=80)
    tag = clean_text(request.GET.get("tag"), max_length=40)
    communities = selectors.directory(query=query, tag=tag)
    mine = set(selectors.user_communities(me(request)).values_list("id", flat=True))
    return render(
        request,
        "communities/directory.html",
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
    item = selectors.community_by_invite(code)
    if request.method == "POST":
        services.membership_join_by_invite(code=code, user=me(request))
        messages.success(request, f"Welcome to \u2068{item.name}\u2069!")
        return redirect(item.get_absolute_url())
    return render(request, "communities/invite.html", {"community": item})


@login_required
@domain_errors
def community_manage(request: HttpRequest, slug: str) -> HttpResponse:
    user = me(request)
    item, membership = selectors.community_for_moderator(user, slug)
    if request.method == "POST":
        action = request.POST.get("action")
        if action in ("approve", "reject"):
            services.join_request_decide(
                request=selectors.join_request_for_moderator(
                    user, item, parse_id(request.POST.get("request"))
                ),
                by=user,
                approve=action == "approve",
            )
        elif action == "reset_invite":
            services.community_invite_reset(community=item, by=user)
        elif action == "remove":
            target = selectors.member_of(item, parse_id(request.POST.get("user")))
            services.membership_remove(community=item, user=target, by=user)
        elif action == "role":
            target = selectors.member_of(item, parse_id(request.POST.get("user")))
            services.membership_set_role(
                community=item, user=target, role=request.POST.get("role", ""), by=user
            )
        else:
            raise NotFound("No such action.")
        messages.success(request, "Done.")
        return redirect("community_manage", slug=slug)
    return render(
        request,
        "communities/manage.html",
        {
            "community": item,
            "membership": membership,
            "can_own": policy.can_own(user, item),
            "members": selectors.community_members(item),
            "requests": selectors.pending_join_requests(item),
            "invite_url": request.build_absolute_uri(f"/invite/{item.invite_code}/"),
            "roles": Membership.Role.choices,
            "now": timezone.now(),
        },
    )
