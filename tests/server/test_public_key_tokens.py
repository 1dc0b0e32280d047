"""Tokens signed with the backend's private key, checked with its public key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from wire import HubFactory, RawClient


def _keys(algorithm: str) -> tuple[Any, bytes]:
    private: Any = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                    if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1()))
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_public_key_tokens(algorithm: str, hub_factory: HubFactory, tmp_path: Path) -> None:
    private, public = _keys(algorithm)
    key_file = tmp_path / "backend.pem"
    key_file.write_bytes(public)
    hub = await hub_factory(jwt_algorithm=algorithm, jwt_public_key_file=str(key_file), secret=None)
    claims = {"sub": "alice", "exp": int(time.time()) + 60}

    good = await RawClient.open(hub.url)
    welcome = await good.hello(jwt.encode(claims, private, algorithm=algorithm))
    assert welcome["user"] == "alice"

    # Signed by another key pair: refused, and so is an HS256 token made with
    # the public key as its secret (the classic algorithm-confusion attack).
    other, _ = _keys(algorithm)
    forged = [jwt.encode(claims, other, algorithm=algorithm)]
    forged.append(_hs256_with_key_as_secret(claims, public))
    for token in forged:
        client = await RawClient.open(hub.url)
        reply = await client.call("hello", v=1, token=token)
        assert reply["t"] == "error" and reply["code"] == "unauthorized"
        assert (await client.closed())[0] == 4001

    assert (await good.ok("ping"))["server_time"] > 0
    await good.close()


def _hs256_with_key_as_secret(claims: dict[str, Any], public: bytes) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"
