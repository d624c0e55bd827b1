"""Passwords, signed tokens with `kid`, opaque secrets, and encryption of secrets at rest.

Key material comes from `PARLEY_SECRET_KEYS` (newest first) or, for the embedded default, a
file generated once in the data directory. Each secret key derives, through HKDF, one token
signing key and one Fernet key, so rotating `PARLEY_SECRET_KEYS` rotates both: the newest signs
and encrypts; older keys still verify and decrypt until they are removed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ISSUER = "parley"
JWT_ALGORITHM = "HS256"
VERIFIED_CACHE_SIZE = 4096

# --- passwords ---------------------------------------------------------------------------

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


@cache
def _dummy_hash() -> str:
    """A real hash of a random password: verifying unknown emails against it costs the same
    time as a real check, so response time does not reveal which emails exist. Made on first
    use (an argon2 hash costs ~0.1 s, not worth paying at import)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# --- opaque secrets (refresh tokens, API keys, invitation tokens) -------------------------


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret: what we store and look up, never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# --- key material ------------------------------------------------------------------------


def load_secret_keys(configured: str | None, data_dir: Path) -> list[str]:
    """Configured keys (newest first), else a key generated once into the data directory."""
    if configured:
        return [k for k in (s.strip() for s in configured.split(",")) if k]
    path = data_dir / "secret_keys"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48) + "\n")
        path.chmod(0o600)
    keys = [k.strip() for k in path.read_text().splitlines() if k.strip()]
    if not keys:
        raise RuntimeError(f"{path} holds no key")
    return keys


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"parley-v1", info=purpose).derive(
        secret.encode()
    )


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: bytes


@dataclass
class TokenError(Exception):
    reason: str


@dataclass
class Keyring:
    """Token signing keys (by `kid`) and the MultiFernet for secrets at rest."""

    signing: list[SigningKey]
    fernet: MultiFernet
    _by_kid: dict[str, SigningKey] = field(init=False)
    _verified: dict[tuple[str, str, str], dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self._by_kid = {k.kid: k for k in self.signing}
        # Tokens this process verified, by (token, audience, type): a widget sends many
        # requests with one token, and PyJWT parses it twice, byte by byte, per check. Only
        # the exact string that passed every check hits; its expiry is checked on each use.
        self._verified = {}

    @classmethod
    def from_secrets(cls, keys: list[str]) -> Keyring:
        if not keys:
            raise ValueError("at least one secret key is needed")
        signing = []
        fernets = []
        for secret in keys:
            sig = _derive(secret, b"jwt-signing")
            kid = hashlib.sha256(sig).hexdigest()[:16]
            signing.append(SigningKey(kid=kid, key=sig))
            fernets.append(Fernet(base64.urlsafe_b64encode(_derive(secret, b"secrets-at-rest"))))
        return cls(signing=signing, fernet=MultiFernet(fernets))

    # tokens ------------------------------------------------------------------------------
    def issue(
        self,
        *,
        subject: str,
        audience: str,
        token_type: str,
        ttl_seconds: int,
        claims: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """Sign a JWT with the newest key. Returns the token and its `exp`."""
        issued = int(now if now is not None else time.time())
        exp = issued + ttl_seconds
        payload: dict[str, Any] = {
            **(claims or {}),
            "iss": ISSUER,
            "sub": subject,
            "aud": audience,
            "typ": token_type,
            "iat": issued,
            "nbf": issued,
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        key = self.signing[0]
        token = jwt.encode(
            payload, key.key, algorithm=JWT_ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
        )
        return token, exp

    def verify(self, token: str, *, audience: str, token_type: str) -> dict[str, Any]:
        """Verify signature (by `kid`), algorithm, issuer, audience, type and times.

        Anything unexpected in the header (`jku`, `jwk`, `x5u`, `crit`, another algorithm) is a
        refusal: we only ever trust our own keys, chosen by our own `kid`.
        """
        cache_key = (token, audience, token_type)
        known = self._verified.get(cache_key)
        if known is not None:
            if time.time() < known["exp"]:
                return dict(known)
            del self._verified[cache_key]
        claims = self._verify(token, audience=audience, token_type=token_type)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[cache_key] = dict(claims)
        return claims

    def _verify(self, token: str, *, audience: str, token_type: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed") from exc
        if header.get("alg") != JWT_ALGORITHM:
            raise TokenError("algorithm")
        if set(header) - {"alg", "kid", "typ"}:
            raise TokenError("header")
        kid = header.get("kid")
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown_kid")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[JWT_ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "typ", "jti"]},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            raise TokenError(type(exc).__name__) from exc
        if claims.get("typ") != token_type:
            raise TokenError("type")
        # PyJWT accepts a list `aud` that merely contains ours; we only issue one audience.
        if claims.get("aud") != audience:
            raise TokenError("audience")
        # PyJWT coerces numeric strings; we only issue integers, so anything else is forged.
        if not all(type(claims.get(k)) is int for k in ("exp", "iat", "nbf")):
            raise TokenError("claim_types")
        return claims

    # secrets at rest -----------------------------------------------------------------------
    def encrypt(self, plaintext: str) -> str:
        return self.fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self.fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt with any configured key") from exc

    def reencrypt(self, ciphertext: str) -> str:
        """Re-encrypt under the newest key (used by `parley rotate-keys`)."""
        return self.fernet.rotate(ciphertext.encode()).decode()
