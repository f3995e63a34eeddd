"""The analytics pages: a community's, for its owners and moderators (and site moderators), and
the site's in the admin, for site moderators; each with its CSV tables."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from accounts.selectors import me
from analytics import charts, exports, selectors
from analytics.selectors import RANGES, WEEKDAYS, Figures
from communities import selectors as community_selectors
from communities.policy import is_site_moderator
from hobbies.errors import Forbidden
from hobbies.http import domain_errors


def chart_context(figures: Figures) -> dict[str, Any]:
    days = [d.day for d in figures.days]
    channel_rows = [
        (
            f"{row['community__name']} #{row['channel__name']}"
            if "community__name" in row
            else f"#{row['channel__name']}",
            row["messages"],
        )
        for row in figures.channels
    ]
    return {
        "figures": figures,
        "ranges": RANGES,
        "messages_chart": charts.bars(days, [d.messages for d in figures.days]),
        "active_chart": charts.lines(
            days,
            [
                ("Active that day", "series-daily", [d.active_members for d in figures.days]),
                (
                    "Active in the 30 days to that day",
                    "series-monthly",
                    [d.monthly_active_members for d in figures.days],
                ),
            ],
        ),
        "members_chart": charts.bars(days, [d.new_members for d in figures.days]),
        "channels_chart": charts.ranking(channel_rows),
        "channel_rows": channel_rows,
        "heat_chart": charts.heat_map(figures.heat, WEEKDAYS),
        "moderation_chart": charts.lines(
            days,
            [
                ("Reports", "series-reports", [d.reports for d in figures.days]),
                (
                    "Moderation actions",
                    "series-actions",
                    [d.moderation_actions for d in figures.days],
                ),
            ],
        ),
        "communities_chart": charts.ranking(
            [(row["community__name"], row["messages"]) for row in figures.communities]
        ),
    }


def _csv(figures: Figures, table: str, name: str) -> HttpResponse:
    response = HttpResponse(
        exports.figures_csv(figures, table), content_type="text/csv; charset=utf-8"
    )
    filename = f"{name}-{table}-{figures.first:%Y%m%d}-{figures.last:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
@domain_errors
def community_page(request: HttpRequest, slug: str) -> HttpResponse:
    user = me(request)
    community, _ = community_selectors.community_for_moderator(user, slug)
    days = selectors.parse_range(request.GET.get("days"))
    figures = selectors.community_figures(community, days=days)
    context = {"community": community, **chart_context(figures)}
    return render(request, "analytics/community.html", context)


@login_required
@require_GET
@domain_errors
def community_csv(request: HttpRequest, slug: str) -> HttpResponse:
    user = me(request)
    community, _ = community_selectors.community_for_moderator(user, slug)
    days = selectors.parse_range(request.GET.get("days"))
    table = exports.parse_table(request.GET.get("table"), site=False)
    figures = selectors.community_figures(community, days=days)
    return _csv(figures, table, f"{community.slug}-analytics")


def _site_moderator(request: HttpRequest) -> None:
    if not is_site_moderator(request.user):
        raise Forbidden("The site's analytics are for site moderators.")


@domain_errors
def site_page(request: HttpRequest) -> HttpResponse:
    """The admin's analytics page (every community), for site moderators."""
    _site_moderator(request)
    days = selectors.parse_range(request.GET.get("days"))
    figures = selectors.site_figures(days=days)
    context = {
        **admin.site.each_context(request),
        "title": "Community analytics",
        **chart_context(figures),
    }
    return TemplateResponse(request, "admin/analytics.html", context)


@domain_errors
def site_csv(request: HttpRequest) -> HttpResponse:
    _site_moderator(request)
    days = selectors.parse_range(request.GET.get("days"))
    table = exports.parse_table(request.GET.get("table"), site=True)
    return _csv(selectors.site_figures(days=days), table, "site-analytics")
