"""The analytics pages and their CSV: who sees them, what they show, in how many queries."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.utils import timezone

from analytics.rollup import stats_rollup
from communities.models import Community, Membership
from communities.services import community_create, membership_join, membership_set_role
from conftest import client_for

pytestmark = pytest.mark.django_db

URL = "/c/hiking/manage/analytics/"
ADMIN_QUERIES = 12


@pytest.fixture
def year(make_year):
    year = make_year(messages=1500)
    stats_rollup(now=year.now)
    return year


def owner_client(year):
    return client_for(year.communities[0].created_by)


def test_the_owner_sees_every_chart_with_its_table(year):
    response = owner_client(year).get(URL + "?days=90")
    assert response.status_code == 200
    html = response.content.decode()
    for title in (
        "Messages per day",
        "Active members",
        "New members",
        "Busiest channels",
        "Busiest hours of the week",
        "Reports and moderation actions",
    ):
        assert f">{title}</h2>" in html
    # One bar per day, a 7 by 24 heat map, a line per series, each chart titled for screen
    # readers and given as a table too.
    messages = html.split('data-chart="messages"')[1].split("</figure>")[0]
    assert messages.count('<rect class="bar"') == 90
    assert html.count('class="cell level-') == 7 * 24
    assert html.count('data-points="90"') == 4
    assert html.count('role="img"') == 6
    assert html.count("as a table</summary>") == 6
    shown = sum(int(v) for v in re.findall(r'data-value="(\d+)"', messages))
    assert shown == int(re.search(r"<dt>Messages</dt><dd>(\d+)</dd>", html)[1]) > 0
    assert '<option value="90" selected>' in html


def test_the_manage_page_links_to_the_analytics(year):
    response = owner_client(year).get("/c/hiking/manage/")
    assert 'href="/c/hiking/manage/analytics/"' in response.content.decode()


def test_bad_ranges_and_tables_are_refused_clearly(year):
    client = owner_client(year)
    for query in ("?days=7", "?days=abc", "?days=-30"):
        response = client.get(URL + query)
        assert response.status_code == 400
        assert "30, 90 or 365" in response.content.decode()
    response = client.get(URL + "export.csv?table=users")
    assert response.status_code == 400
    assert "daily, channels, hours" in response.content.decode()


def test_moderators_and_site_moderators_see_it_members_and_strangers_do_not(
    year, make_user, site_moderator, client
):
    hiking = year.communities[0]
    owner = hiking.created_by
    member = year.users[1]
    moderator = year.users[2]
    membership_set_role(community=hiking, user=moderator, role=Membership.Role.MODERATOR, by=owner)
    stranger = make_user("stranger")
    assert client_for(moderator).get(URL).status_code == 200
    assert client_for(site_moderator).get(URL).status_code == 200
    assert client_for(member).get(URL).status_code == 403
    assert client_for(member).get(URL + "export.csv").status_code == 403
    assert client_for(stranger).get(URL).status_code == 403
    assert client_for(stranger).get("/c/nowhere/manage/analytics/").status_code == 404
    assert client.get(URL).status_code == 302  # to the log-in page


def test_the_admin_page_is_for_site_moderators(year, site_moderator, staff_viewer, make_user):
    response = client_for(site_moderator).get("/admin/analytics/?days=365")
    assert response.status_code == 200
    html = response.content.decode()
    assert ">Busiest communities</h2>" in html
    assert "Hiking" in html
    assert client_for(staff_viewer).get("/admin/analytics/").status_code == 403
    assert client_for(staff_viewer).get("/admin/analytics/export.csv").status_code == 403
    assert client_for(make_user()).get("/admin/analytics/").status_code == 302
    index = client_for(site_moderator).get("/admin/").content.decode()
    assert 'href="/admin/analytics/"' in index


def test_pages_take_the_same_queries_however_much_data(
    make_year, site_moderator, django_assert_num_queries, make_user
):
    owner = make_user("lonely")
    community_create(name="Quiet", slug="quiet", by=owner)
    stats_rollup()
    client = client_for(owner)
    admin = client_for(site_moderator)
    client.get("/c/quiet/manage/analytics/")  # the session and caches warm up
    admin.get("/admin/analytics/")
    with django_assert_num_queries(13):
        assert client.get("/c/quiet/manage/analytics/?days=365").status_code == 200
    with django_assert_num_queries(ADMIN_QUERIES):
        assert admin.get("/admin/analytics/?days=365").status_code == 200
    year = make_year(messages=2500)
    stats_rollup(now=year.now)
    for user in year.users[:20]:
        membership_join(community=Community.objects.get(slug="quiet"), user=user)
    with django_assert_num_queries(13):
        assert client.get("/c/quiet/manage/analytics/?days=365").status_code == 200
    busy = client_for(year.communities[0].created_by)
    busy.get(URL)
    with django_assert_num_queries(13):
        assert busy.get(URL + "?days=365").status_code == 200
    with django_assert_num_queries(ADMIN_QUERIES):
        assert admin.get("/admin/analytics/?days=365").status_code == 200


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_csv_holds_the_figures_of_the_page(year, site_moderator):
    client = owner_client(year)
    response = client.get(URL + "export.csv?days=30")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.now().astimezone(dt.UTC).date()
    first = today - dt.timedelta(days=29)
    assert response["Content-Disposition"] == (
        f'attachment; filename="hiking-analytics-daily-{first:%Y%m%d}-{today:%Y%m%d}.csv"'
    )
    rows = read_csv(response)
    assert rows[0] == [
        "day",
        "messages",
        "active_members",
        "monthly_active_members",
        "new_members",
        "reports",
        "moderation_actions",
    ]
    assert [r[0] for r in rows[1:]] == [
        (first + dt.timedelta(days=i)).isoformat() for i in range(30)
    ]
    page = client.get(URL + "?days=30").content.decode()
    total = int(re.search(r"<dt>Messages</dt><dd>(\d+)</dd>", page)[1])
    assert sum(int(r[1]) for r in rows[1:]) == total
    channels = read_csv(client.get(URL + "export.csv?table=channels&days=365"))
    assert channels[0] == ["channel", "messages"]
    assert {r[0] for r in channels[1:]} == {"general", "trails", "gear", "photos", "trips"}
    hours = read_csv(client.get(URL + "export.csv?table=hours&days=365"))
    assert [r[0] for r in hours[1:]] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert sum(int(n) for r in hours[1:] for n in r[1:]) == sum(int(r[1]) for r in channels[1:])
    # A community named like a formula stays text in a spreadsheet.
    site = read_csv(
        client_for(site_moderator).get("/admin/analytics/export.csv?table=communities&days=365")
    )
    assert site[2][:2] == ["'=HYPERLINK(1)", "chess"] or site[1][:2] == ["'=HYPERLINK(1)", "chess"]
