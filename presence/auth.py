"""Bearer tokens: minting, verifying, and the server's secret.

Tokens are JWTs signed with HS256 by the server's secret, carrying the
subject (agent id, supervisor or service name), a role, an expiry and the
center (workspace) they belong to. They are verified before a websocket is
accepted and on every HTTP request. Tokens are never logged.

A token without a ``center`` claim belongs to the deployment's default
center (the one of its center file), so tokens minted before there were
several centers keep working. The ``platform`` role manages the centers
themselves (``/api/v1/centers``) and acts inside none of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import jwt

from presence.schema.common import CENTER_PATTERN

# A center id is its keys' Redis Cluster hash tag: the schema's pattern
# (no braces, no colon), checked here too because a token is read before
# any body.
CENTER_ID: Final = re.compile(CENTER_PATTERN)
CENTER_RULE: Final = "1-32 lowercase letters, digits, _ or -, starting with a letter or digit"

# the roles that act inside one center, and the one that manages centers
CENTER_ROLES: Final = ("agent", "supervisor", "service")
PLATFORM: Final = "platform"
ROLES: Final = (*CENTER_ROLES, PLATFORM)
ALGORITHM: Final = "HS256"


class AuthError(Exception):
    """The token is missing, malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    role: str
    exp: int
    # the center the token belongs to; None: the deployment's default center
    center: str | None = None


def mint(
    secret: str,
    sub: str,
    role: str,
    ttl: int = 12 * 3600,
    now: float | None = None,
    center: str | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not sub:
        raise ValueError("the subject (--sub) must not be empty")
    if center is not None and not CENTER_ID.match(center):
        raise ValueError(f"the center (--center) must be {CENTER_RULE}, got {center!r}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {"sub": sub, "role": role, "iat": issued, "exp": issued + ttl}
    if center is not None:
        claims["center"] = center
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# Tokens that verified, with their raw expiry. A signature check costs tens of
# microseconds on every intake request and socket; a token that verified stays
# valid until it expires (nothing else in it can go stale), so only the expiry
# is checked again, exactly as jwt.decode would (expired when exp <= now).
_verified: dict[tuple[str, str], tuple[Claims, float]] = {}
_VERIFIED_MAX = 10_000


def verify(secret: str, token: str | None) -> Claims:
    if not token:
        raise AuthError("a bearer token is required")
    hit = _verified.get((secret, token))
    if hit is not None:
        if hit[1] <= time.time():
            del _verified[(secret, token)]
            raise AuthError("the token has expired")
        return hit[0]
    try:
        data = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.PyJWTError:
        raise AuthError("the token is not valid") from None
    role = data.get("role")
    if role not in ROLES or not isinstance(data.get("sub"), str):
        raise AuthError("the token carries no valid role")
    center = data.get("center")
    if center is not None and not (isinstance(center, str) and CENTER_ID.match(center)):
        raise AuthError("the token's center is not a valid center id")
    claims = Claims(sub=data["sub"], role=role, exp=int(data["exp"]), center=center)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[(secret, token)] = (claims, float(data["exp"]))
    return claims


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def secret_path(data_dir: Path) -> Path:
    return data_dir / "secret"


def read_secret(data_dir: Path) -> str | None:
    """The secret kept in the data folder, or None when there is none yet."""
    try:
        return secret_path(data_dir).read_text("utf-8").strip() or None
    except FileNotFoundError:
        return None


def load_or_create_secret(data_dir: Path) -> tuple[str, bool]:
    """The secret kept in the data folder; (secret, created now)."""
    path = secret_path(data_dir)
    if path.exists():
        return path.read_text("utf-8").strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # O_EXCL: two processes starting at once must not write two secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text("utf-8").strip(), False
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value, True


class RedactTokens(logging.Filter):
    """Scrub ``token=...`` from log lines (uvicorn logs websocket paths)."""

    _re = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._re.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = self._re.sub(r"\1[redacted]", record.msg)
        return True


# -- signed links for customers (no account) ------------------------------------------
#
# A customer follows a link to their case's status page or to its survey. The
# link is the work id, an expiry and an HMAC-SHA256 of both with the server's
# secret, the link's purpose and the case's center, so it cannot be guessed,
# forged, moved to another case or center or used for the other purpose.
# Nothing is stored for it. A link of a center other than the default one
# names it in front (``<center>.<work id>.<expiry>.<signature>``): the public
# route has no token to say which center it is, so the link does; the
# default center's links have no such part, as before there were several.

LINK_SIG_CHARS: Final = 32  # base64url characters of the signature: 192 bits


def _link_sig(secret: str, purpose: str, center: str, work_id: str, exp: int) -> str:
    msg = f"presence-link|{purpose}|{center}|{work_id}|{exp}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:LINK_SIG_CHARS]


def sign_link(
    secret: str, purpose: str, center: str, work_id: str, exp: int = 0, *, named: bool = False
) -> str:
    """The token of a customer link: ``<work id>.<expiry, s; 0 none>.<signature>``,
    with ``<center>.`` in front when `named` (every center but the default one)."""
    token = f"{work_id}.{exp}.{_link_sig(secret, purpose, center, work_id, exp)}"
    return f"{center}.{token}" if named else token


def link_center(token: str) -> str | None:
    """The center a link token names; None for one of the default center."""
    parts = token.split(".")
    return parts[0] if len(parts) == 4 else None


def check_link(secret: str, purpose: str, center: str, token: str, now: float | None = None) -> str:
    """The work id of a valid link token of `center`; AuthError for a forged,
    altered or expired one, or one that names another center."""
    parts = token.split(".")
    if len(parts) == 4:
        named, *parts = parts
        if named != center:
            raise AuthError("not a link of this server")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        raise AuthError("not a link of this server")
    work_id, exp_s, sig = parts
    exp = int(exp_s)
    if not hmac.compare_digest(sig, _link_sig(secret, purpose, center, work_id, exp)):
        raise AuthError("not a link of this server")
    if exp and exp <= (time.time() if now is None else now):
        raise AuthError("this link has expired")
    return work_id
