"""The client's address behind load balancers (`hobbies.http.client_ip`), as the per-address
log-in and sign-up limits and the sign-in record see it."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from accounts.models import SignIn
from conftest import PASSWORD
from hobbies.http import client_ip

pytestmark = pytest.mark.django_db

BALANCER = "10.0.0.5"  # every request reaches the app from the load balancer's address


def behind_balancer(forwarded_for: str) -> Client:
    return Client(REMOTE_ADDR=BALANCER, HTTP_X_FORWARDED_FOR=forwarded_for)


def test_people_behind_one_balancer_have_their_own_log_in_limit(settings, alice, bob):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.RATE_LIMIT_LOGIN = (2, 3600)
    noisy = behind_balancer("198.51.100.7")
    for name in ("nobody1", "nobody2"):
        noisy.post("/accounts/login/", {"username": name, "password": "wrong-pw"})
    assert (
        noisy.post("/accounts/login/", {"username": "nobody3", "password": "x"}).status_code == 429
    )
    other = behind_balancer("198.51.100.8")
    response = other.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302
    assert SignIn.objects.get(user=bob).ip == "198.51.100.8"


def test_a_forged_forwarded_for_does_not_choose_the_address(settings, alice):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.RATE_LIMIT_LOGIN = (2, 3600)
    # The balancer appends the address it saw; whatever the client sent stays to its left.
    for n in range(2):
        behind_balancer(f"203.0.113.{n}, 198.51.100.7").post(
            "/accounts/login/", {"username": f"nobody{n}", "password": "wrong-pw"}
        )
    blocked = behind_balancer("203.0.113.99, 198.51.100.7").post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert "Too many requests" in blocked.content.decode()
    signed_in = behind_balancer("203.0.113.250, 198.51.100.9").post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert signed_in.status_code == 302
    assert SignIn.objects.get(user=alice).ip == "198.51.100.9"


def test_without_trusted_proxies_forwarded_for_is_ignored(settings, alice):
    assert settings.TRUSTED_PROXY_COUNT == 0
    response = Client(REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="198.51.100.7").post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert SignIn.objects.get(user=alice).ip == "192.0.2.10"


def test_signup_limit_is_per_client_behind_the_balancer(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.RATE_LIMIT_SIGNUP = (1, 3600)
    first = behind_balancer("198.51.100.7")
    assert (
        first.post("/accounts/signup/", {"username": "new1", "password": PASSWORD}).status_code
        == 302
    )
    second = behind_balancer("198.51.100.8")
    assert (
        second.post("/accounts/signup/", {"username": "new2", "password": PASSWORD}).status_code
        == 302
    )


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded_for", "seen"),
    [
        (0, "192.0.2.1", "198.51.100.7", "192.0.2.1"),
        (1, BALANCER, "198.51.100.7", "198.51.100.7"),
        (1, BALANCER, "1.1.1.1,198.51.100.7", "198.51.100.7"),
        (1, BALANCER, " 2001:DB8::0:1 ", "2001:db8::1"),
        # CDN then balancer: the CDN appends the client, the balancer appends the CDN.
        (2, BALANCER, "1.1.1.1, 198.51.100.7, 203.0.113.5", "198.51.100.7"),
        # Fewer entries than proxies (the request did not come through them all): the peer.
        (2, BALANCER, "198.51.100.7", BALANCER),
        (1, BALANCER, "", BALANCER),
        # What a trusted proxy wrote is not an address: the peer, never the text.
        (1, BALANCER, "1.1.1.1, unknown", BALANCER),
        (1, BALANCER, "1.1.1.1, 198.51.100.7:4711", BALANCER),
        (0, "", "", "unknown"),
    ],
)
def test_client_ip(settings, proxies, remote, forwarded_for, seen):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_ip(request) == seen
