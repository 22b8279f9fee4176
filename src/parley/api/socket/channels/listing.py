"""`listing:{id}` (the marketplace): watchers of one listing (DESIGN §4.1)."""

from __future__ import annotations

import logging
from typing import Any

from parley.api.socket.channels.common import parse_uuid
from parley.api.socket.channels.ports import ChannelPorts
from parley.api.socket.core.channel import (
    UNAUTHORIZED,
    Channel,
    ChannelSocket,
    HandlerReply,
    StopChannel,
    ok,
    refused,
)
from parley.api.socket.core.message import Broadcast, Message
from parley.marketplace.events import DELETED, HIDDEN
from parley.marketplace.permissions import Action, allowed, level_of

log = logging.getLogger(__name__)


class ListingChannel(Channel):
    """Any signed-in user, for a listing they may see (a hidden one: its seller and staff).
    Subscribers get `reply`, `updated`, `sold`, `reply_deleted`, `reply_hidden`
    (`marketplace.events`). When the listing is hidden, the channels of everybody else stop
    (`phx_close`), and its seller and staff get `hidden`; when it is deleted, every channel stops.
    """

    intercept = frozenset({HIDDEN, DELETED})

    def __init__(self, socket: ChannelSocket, topic: str, ports: ChannelPorts) -> None:
        super().__init__(socket, topic)
        self._ports = ports
        self.listing_id = parse_uuid(topic.partition(":")[2])
        self._sees_hidden = False

    async def join(self, payload: Any) -> HandlerReply:
        level = level_of(self.principal.role)
        if self.listing_id is None or not self.signed_in or not allowed(Action.WATCH, level):
            return refused(UNAUTHORIZED)
        try:
            listing = await self._ports.listings.get(self.listing_id)
        except Exception as exc:
            log.warning("listing look-up for %s failed: %r", self.topic, exc)
            return refused("unavailable")
        if listing is None:
            return refused(UNAUTHORIZED)
        is_seller = listing.seller.id == self.user_id
        self._sees_hidden = allowed(Action.SEE_HIDDEN, level, is_owner=is_seller)
        if listing.hidden_at is not None and not self._sees_hidden:
            return refused(UNAUTHORIZED)
        return ok()

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | StopChannel | None:
        if broadcast.event == DELETED:
            return StopChannel("deleted")
        if not self._sees_hidden:
            return StopChannel("hidden")
        return broadcast
