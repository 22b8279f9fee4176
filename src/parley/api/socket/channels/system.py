"""`system:general`: everyone signed in (announcements and who is online)."""

from __future__ import annotations

from typing import Any

from parley.api.socket.core.channel import UNAUTHORIZED, Channel, HandlerReply, ok, refused


class SystemChannel(Channel):
    """`system:general`: any signed-in user; `announcement` from admins; presence (who is on)."""

    presence = True

    async def join(self, payload: Any) -> HandlerReply:
        return ok() if self.signed_in else refused(UNAUTHORIZED)
