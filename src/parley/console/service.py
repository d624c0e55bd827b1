"""What the console's pages show that no single API call returns: the onboarding checklist
and the at-a-glance view. Read-only, and only through the other features' services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.bots import service as bots
from parley.bots.schemas import BotOut
from parley.channels import service as channels
from parley.channels.schemas import ChannelOut
from parley.conversations import service as conversations
from parley.conversations.repository import ConversationFilters
from parley.kit.db import TenantId
from parley.knowledge import service as knowledge
from parley.knowledge.schemas import SourceOut

LOOK = 20  # how far each check looks: enough to tell "any at all" on a new workspace


@dataclass
class Step:
    key: str
    title: str
    done: bool
    hint: str


@dataclass
class Onboarding:
    bot: BotOut | None
    sources: list[SourceOut]
    widget: ChannelOut | None
    steps: list[Step] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.steps)

    @property
    def next_step(self) -> str | None:
        return next((s.key for s in self.steps if not s.done), None)


async def onboarding(session: AsyncSession, tenant_id: TenantId) -> Onboarding:
    """Each step is ticked from what exists, never from what was clicked."""
    bot_page = await bots.list_bots(session, tenant_id, None, 1)
    bot = bot_page.items[0] if bot_page.items else None
    sources = (await knowledge.list_sources(session, tenant_id, None, LOOK)).items
    tried = await audit.has_action(session, tenant_id, "bot.previewed")
    widgets = [
        c
        for c in (await channels.list_channels(session, tenant_id, None, LOOK)).items
        if c.type == "widget"
    ]
    talked = (
        await conversations.list_conversations(
            session, tenant_id, ConversationFilters(channel_type="widget"), None, LOOK
        )
    ).items
    state = Onboarding(bot=bot, sources=sources, widget=widgets[0] if widgets else None)
    state.steps = [
        Step("bot", "Create a bot", bot is not None, "Give it a name; you can tune it later."),
        Step(
            "knowledge",
            "Add knowledge",
            any(s.status == "ready" for s in sources),
            "Paste the text of a page or an FAQ your customers ask about.",
        ),
        Step("try", "Try it", tried, "Ask the bot a question here, before anyone else sees it."),
        Step(
            "widget",
            "Install the widget",
            bool(widgets),
            "Say which site it goes on, then paste the snippet into your pages.",
        ),
        Step(
            "conversation",
            "See the first real conversation",
            any(c.last_message_at is not None for c in talked),
            "Open your site and ask the widget something.",
        ),
    ]
    return state


@dataclass
class Glance:
    today: int
    waiting: int
    unanswered: int
    capped: int = LOOK


async def glance(session: AsyncSession, tenant_id: TenantId) -> Glance:
    """Counts for the home page, each capped at `LOOK` (shown as "20+"): a page, not a report."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    async def count(f: ConversationFilters) -> int:
        found = await conversations.list_conversations(session, tenant_id, f, None, LOOK)
        return len(found.items) + (1 if found.next_cursor else 0)

    return Glance(
        today=await count(ConversationFilters(since=midnight)),
        waiting=await count(ConversationFilters(handoff_status="waiting")),
        unanswered=await count(ConversationFilters(unanswered=True, since=midnight)),
    )
