"""Liveness and readiness endpoints."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_channel_layer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


def test_readyz_leaves_out_the_chime_bridge_with_the_local_backend(client, settings):
    settings.MESSAGING_BACKEND = "local"
    assert "chime_bridge" not in client.get("/readyz").json()
