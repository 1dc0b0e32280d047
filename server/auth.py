"""Checking the tokens that the application's backend signs.

The hub never issues identities of its own: a token's ``sub`` is the user, and
its ``exp`` bounds the session. HS256 with a shared secret is the default;
RS256 or ES256 with the backend's public key keep the signing key off the hub.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from clipwire.protocol import ErrorCode, RequestError

MAX_USER_CHARS = 128
# Letters that print as nothing (Hangul fillers, the blank Braille pattern): printable
# to Python, invisible to people. Control, format and bidi characters are not printable.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    expires_at: float
    name: str | None = None
    issued_at_ms: int | None = None  # from ``iat``, for revocation


class TokenVerifier:
    def __init__(self, algorithm: str, key: str, *, leeway_s: float = 5.0,
                 audience: str | None = None, issuer: str | None = None,
                 reserved: frozenset[str] = frozenset()) -> None:
        self.algorithm = algorithm
        # Ids the hub speaks as itself (the system user): a token for one would read
        # every DM the backend sent as it, and post in its name.
        self.reserved = reserved
        self._key = key
        self._leeway_s = leeway_s
        self._audience = audience
        self._issuer = issuer

    @classmethod
    def from_settings(cls, algorithm: str, secret: str | None, public_key_file: str | None,
                      leeway_s: float, audience: str | None = None,
                      issuer: str | None = None,
                      reserved: frozenset[str] = frozenset()) -> TokenVerifier:
        checks = {"leeway_s": leeway_s, "audience": audience, "issuer": issuer,
                  "reserved": reserved}
        if algorithm == "HS256":
            if not secret:
                raise ValueError("HS256 needs a secret")
            return cls(algorithm, secret, **checks)  # type: ignore[arg-type]
        if not public_key_file:
            raise ValueError(f"{algorithm} needs a public key file")
        return cls(algorithm, Path(public_key_file).read_text(), **checks)  # type: ignore[arg-type]

    def verify(self, token: str) -> Identity:
        """Return who the token speaks for, or raise ``unauthorized`` saying why."""
        try:
            required = ["sub", "exp"]
            if self._audience is not None:
                required.append("aud")
            if self._issuer is not None:
                required.append("iss")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],  # never "none", never the other family
                options={"require": required, "verify_aud": self._audience is not None},
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
            )
        except jwt.ExpiredSignatureError:
            raise RequestError(ErrorCode.UNAUTHORIZED, "token expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise RequestError(ErrorCode.UNAUTHORIZED, f"token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidAudienceError:
            raise RequestError(ErrorCode.UNAUTHORIZED, "token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise RequestError(ErrorCode.UNAUTHORIZED, "token from another issuer") from None
        except jwt.InvalidTokenError:
            raise RequestError(ErrorCode.UNAUTHORIZED, "invalid token") from None
        user = claims["sub"]
        if not valid_user_id(user):
            raise RequestError(ErrorCode.UNAUTHORIZED, "token 'sub' is not a valid user id")
        if user in self.reserved:
            raise RequestError(ErrorCode.UNAUTHORIZED, "token 'sub' is an id the hub reserves")
        name = claims.get("name")
        iat = claims.get("iat")
        return Identity(user, float(claims["exp"]) + self._leeway_s,
                        name if isinstance(name, str) else None,
                        int(iat * 1000) if isinstance(iat, int | float) else None)


def revoked(issued_at_ms: int | None, before_ms: int) -> bool:
    """Whether a token issued at ``issued_at_ms`` falls under a revocation at ``before_ms``.

    ``iat`` has whole seconds, so a token minted in the revoke's own second cannot be
    told apart: before or after it. Those are accepted (compared at second granularity),
    else a backend that revokes and re-issues at once would be refused its new token;
    the cost is that a token issued at most a second before the revoke survives it.
    A token without ``iat`` is always refused once its user has a revocation.
    """
    if before_ms <= 0:
        return False
    return issued_at_ms is None or issued_at_ms < before_ms // 1000 * 1000


def valid_user_id(user: object) -> bool:
    """A user id others can tell apart: 1 to ``MAX_USER_CHARS`` printable characters, no
    space at either end, none of the blank letters that show as nothing. A blank or
    invisible id would show as no one in every list, and " alice" as alice."""
    return (isinstance(user, str) and 0 < len(user) <= MAX_USER_CHARS and user.isprintable()
            and user.strip() == user and BLANK_LETTERS.isdisjoint(user))


def sign_token(secret: str, user: str, *, ttl_s: float = 86_400, name: str | None = None,
               algorithm: str = "HS256", **claims: Any) -> str:
    """Sign a token as the application's backend would (for tests, the CLI and demos)."""
    now = time.time()
    payload: dict[str, Any] = {"sub": user, "iat": int(now), "exp": int(now + ttl_s), **claims}
    if name is not None:
        payload["name"] = name
    return jwt.encode(payload, secret, algorithm=algorithm)


def secret_path(db_path: str) -> Path:
    """Where the hub keeps the HS256 secret of the database at ``db_path``."""
    return Path(f"{db_path}.secret")


def secret_beside(db_path: str) -> str:
    """The HS256 secret kept next to the database, created on first use (mode 0600)."""
    path = secret_path(db_path)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret
