"""Shared set-up of the inbox tests: a workspace with an agent and a widget whose bot has
handoff rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Account, WidgetSetup, add_member, create_widget, register


@dataclass
class Inbox:
    owner: Account
    agent: Account
    widget: WidgetSetup

    def staff(self, suffix: str = "") -> str:
        return f"/v1/tenants/{self.owner.tenant_id}{suffix}"

    def conv(self, conversation_id: str, suffix: str = "") -> str:
        return self.staff(f"/conversations/{conversation_id}{suffix}")


async def inbox_workspace(
    client: httpx.AsyncClient, tag: str = "inbox", handoff: dict[str, Any] | None = None
) -> Inbox:
    owner = await register(client, tag)
    agent = await add_member(client, owner, "agent")
    widget = await create_widget(client, owner)
    rules = handoff if handoff is not None else {"keywords": ["talk to a person"]}
    patched = await client.patch(
        f"/v1/tenants/{owner.tenant_id}/bots/{widget.bot_id}",
        json={"handoff": rules},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    return Inbox(owner, agent, widget)
