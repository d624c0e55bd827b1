"""The door for channel ingress (decision 0002): a delivery brings only a channel id in its
path. A SECURITY DEFINER function turns it into the channel's tenant id and nothing else; the
tenant context is set, and the channel's secret is then read through RLS, where the delivery's
signature is checked. Until that check passes nothing is written.

What the door found is remembered per process (decision 0008): a channel's tenant never
changes, and its secret is remembered with its ciphertext, which the storing statement
(`parley_inbound_receive`) compares with the channel's current one — a rotated, re-encrypted
or deleted secret is noticed by the first delivery that uses it, in every process."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId, bind_tenant, request_transaction
from parley.kit.runtime import Runtime

RECHECK_SECONDS = 5.0
"""A remembered secret that fails a delivery's check is looked up again when it is older
than this: how soon a secret replaced through another process is seen by this one."""

_LOOKUP = text("SELECT parley_channel_tenant(:channel_id, :kind)")
_SECRET = text(
    "SELECT secret_encrypted, previous_secret_encrypted, previous_secret_expires_at"
    " FROM channels WHERE tenant_id = :tenant_id AND id = :id"
)


async def bind_channel_tenant(
    session: AsyncSession, channel_id: uuid.UUID, kind: str
) -> TenantId | None:
    """Set the tenant context of channel `channel_id` of type `kind` on the session; None
    when there is no such channel."""
    value = (
        await session.execute(_LOOKUP, {"channel_id": channel_id, "kind": kind})
    ).scalar_one_or_none()
    if value is None:
        return None
    tenant_id = TenantId(uuid.UUID(str(value)))
    await bind_tenant(session, tenant_id)
    return tenant_id


@dataclass(frozen=True)
class ChannelKey:
    """A channel's tenant and inbound secret, as the door found them. `secret_encrypted`
    goes back to the database with the delivery, which refuses it if it is no longer current."""

    tenant_id: TenantId
    secret_encrypted: str
    secret: str
    previous: str | None = None
    """After a rotation, the previous secret; it verifies until `previous_until` (epoch s)."""
    previous_until: float = 0.0
    loaded_at: float = field(default_factory=time.monotonic)

    def secrets(self) -> list[str]:
        """The secrets a delivery may be signed with now: the current one, then the previous
        one during its grace period. The statement that stores the delivery still compares
        the *current* ciphertext, so a later rotation is noticed as before."""
        if self.previous is not None and time.time() < self.previous_until:
            return [self.secret, self.previous]
        return [self.secret]


class ChannelKeys:
    """Channel keys by (channel id, type), bounded (the oldest entry goes first). Process
    memory only; correctness never depends on it (see the module docstring)."""

    def __init__(self, size: int = 10_000) -> None:
        self._items: dict[tuple[uuid.UUID, str], ChannelKey] = {}
        self._size = size

    def get(self, channel_id: uuid.UUID, kind: str) -> ChannelKey | None:
        return self._items.get((channel_id, kind))

    def put(self, channel_id: uuid.UUID, kind: str, key: ChannelKey) -> None:
        self._items.pop((channel_id, kind), None)
        self._items[(channel_id, kind)] = key
        if len(self._items) > self._size:
            del self._items[next(iter(self._items))]

    def forget(self, channel_id: uuid.UUID, kind: str) -> None:
        self._items.pop((channel_id, kind), None)

    async def aclose(self) -> None:
        self._items.clear()


def channel_keys(runtime: Runtime) -> ChannelKeys:
    return runtime.client("channel_keys", ChannelKeys)


async def channel_key(
    runtime: Runtime, channel_id: uuid.UUID, kind: str, *, fresh: bool = False
) -> ChannelKey | None:
    """The tenant and decrypted secret of channel `channel_id` of type `kind` (None: no such
    channel, or it has no secret). From memory unless `fresh` or not seen yet."""
    keys = channel_keys(runtime)
    if not fresh:
        found = keys.get(channel_id, kind)
        if found is not None:
            return found
    async with request_transaction(runtime.db) as session:
        tenant_id = await bind_channel_tenant(session, channel_id, kind)
        if tenant_id is None:
            keys.forget(channel_id, kind)
            return None
        row = (
            await session.execute(_SECRET, {"tenant_id": tenant_id, "id": channel_id})
        ).one_or_none()
    if row is None or row[0] is None:
        keys.forget(channel_id, kind)
        return None
    ciphertext, previous, until = str(row[0]), row[1], row[2]
    key = ChannelKey(
        tenant_id,
        ciphertext,
        runtime.keyring.decrypt(ciphertext),
        runtime.keyring.decrypt(str(previous)) if previous is not None and until else None,
        until.timestamp() if previous is not None and until else 0.0,
    )
    keys.put(channel_id, kind, key)
    return key
