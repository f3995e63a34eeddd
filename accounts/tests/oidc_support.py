"""Helpers for the sign-in tests: RSA keys made at test time, and a scripted OpenID provider.

`ScriptedProvider` is a small HTTP server on 127.0.0.1 that serves a discovery document, its
signing keys and a token endpoint answering with whatever the test scripted, so every check of
the ID token can be driven through the real callback (`test_oidc.py`). The full provider, with
log-in and consent pages, is the Django project in `oidc_provider/` (`test_oidc_browser.py`).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": b64(numbers.n),
        "e": "AQAB",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedProvider:
    CLIENT_ID = "hobbies-web"

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"key-1": rsa_key()}
        self.published = ["key-1"]
        self.hits: dict[str, int] = {}
        self.token_requests: list[dict[str, Any]] = []
        # (form of the token request) -> (status, JSON body); set by tests.
        self.answer: Callable[[dict[str, str]], tuple[int, Any]] | None = None
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                provider.hits[self.path] = provider.hits.get(self.path, 0) + 1
                if self.path == "/.well-known/openid-configuration":
                    self._send(200, provider.discovery())
                elif self.path == "/jwks":
                    keys = [public_jwk(provider.keys[kid], kid) for kid in provider.published]
                    self._send(200, {"keys": keys})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.token_requests.append(
                    {"form": form, "authorization": self.headers.get("Authorization", "")}
                )
                if self.path != "/token" or provider.answer is None:
                    self._send(400, {"error": "invalid_grant"})
                    return
                status, body = provider.answer(form)
                self._send(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = self.url
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> ScriptedProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "end_session_endpoint": f"{self.url}/end-session",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.CLIENT_ID,
            "sub": "0b8f6a2e-4c3d-4e5f-9a1b-2c3d4e5f6a7b",
            "iat": now,
            "exp": now + 3600,
            "auth_time": now,
            "token_use": "id",
            "cognito:username": "olivia",
            "email": "olivia@example.org",
            "email_verified": True,
            "given_name": "Olivia",
            "family_name": "Ortega",
            "cognito:groups": ["moderators"],
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], kid: str = "key-1", key: Any = None) -> str:
        return jwt.encode(claims, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def answer_with(self, **overrides: Any) -> None:
        """Answer the next token requests with an ID token carrying these claim overrides.
        The nonce is taken from the authorization request the test passes in as `nonce`."""

        def answer(form: dict[str, str]) -> tuple[int, Any]:
            claims = self.claims(**overrides)
            return 200, {
                "access_token": "opaque-access-token",
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": self.sign(claims),
            }

        self.answer = answer
