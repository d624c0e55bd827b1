"""Key rotation for tokens and secrets at rest; password hashing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from parley.kit.security import (
    Keyring,
    TokenError,
    hash_password,
    load_secret_keys,
    verify_password,
)

OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40


def test_rotation_keeps_old_tokens_valid_until_the_old_key_is_removed() -> None:
    old_ring = Keyring.from_secrets([OLD])
    token, _ = old_ring.issue(subject="u", audience="a", token_type="access", ttl_seconds=60)
    rotated = Keyring.from_secrets([NEW, OLD])
    assert rotated.verify(token, audience="a", token_type="access")["sub"] == "u"
    new_token, _ = rotated.issue(subject="v", audience="a", token_type="access", ttl_seconds=60)
    assert rotated.signing[0].kid != old_ring.signing[0].kid
    with pytest.raises(TokenError):
        old_ring.verify(new_token, audience="a", token_type="access")
    with pytest.raises(TokenError):
        Keyring.from_secrets([NEW]).verify(token, audience="a", token_type="access")


def test_a_verified_token_is_remembered_only_until_it_expires() -> None:
    """Verified tokens are cached per process; the cache never outlives a token, never
    answers for another audience or type, and a changed token is verified from scratch."""
    ring = Keyring.from_secrets([NEW])
    token, _ = ring.issue(subject="u", audience="a", token_type="widget", ttl_seconds=1)
    assert ring.verify(token, audience="a", token_type="widget")["sub"] == "u"
    assert ring.verify(token, audience="a", token_type="widget")["sub"] == "u"  # remembered
    with pytest.raises(TokenError):
        ring.verify(token, audience="b", token_type="widget")
    with pytest.raises(TokenError):
        ring.verify(token, audience="a", token_type="access")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(TokenError):
        ring.verify(tampered, audience="a", token_type="widget")
    time.sleep(1.1)
    with pytest.raises(TokenError, match="Expired"):
        ring.verify(token, audience="a", token_type="widget")


def test_secrets_at_rest_rotate() -> None:
    old_ring = Keyring.from_secrets([OLD])
    sealed = old_ring.encrypt("sk-provider-key")
    assert "sk-provider-key" not in sealed
    rotated = Keyring.from_secrets([NEW, OLD])
    assert rotated.decrypt(sealed) == "sk-provider-key"
    resealed = rotated.reencrypt(sealed)
    assert Keyring.from_secrets([NEW]).decrypt(resealed) == "sk-provider-key"
    with pytest.raises(ValueError, match="cannot decrypt"):
        Keyring.from_secrets([NEW]).decrypt(sealed)


def test_generated_keys_persist_in_the_data_dir(tmp_path: Path) -> None:
    first = load_secret_keys(None, tmp_path)
    assert first == load_secret_keys(None, tmp_path)
    assert len(first[0]) >= 32
    assert (tmp_path / "secret_keys").stat().st_mode & 0o077 == 0
    assert load_secret_keys(f"{NEW},{OLD}", tmp_path) == [NEW, OLD]


def test_passwords_use_argon2id() -> None:
    h = hash_password("hunter2 is not great")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "hunter2 is not great")
    assert not verify_password(h, "hunter3 is not great")
    assert not verify_password(None, "anything")
    assert not verify_password("garbage", "anything")
