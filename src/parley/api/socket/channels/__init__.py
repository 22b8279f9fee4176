"""The application's channels (DESIGN §5), one module each, and the route table.

Each channel is a small class over the channel contract (`parley.api.socket.core.channel`) and
the typed ports it is given (`ports.ChannelPorts`); `routes` is the one place that says which
topic goes to which channel, built at the composition root:

| topic | channel |
| --- | --- |
| `user:{id}` | `user.UserChannel` |
| `private_chat:{id}` | `private_chat.PrivateChatChannel` |
| `room:chat` | `room_chat.RoomChatChannel` |
| `conversation:{id}` | `conversation.ConversationChannel` |
| `listing:{id}` | `listing.ListingChannel` |
| `system:general` | `system.SystemChannel` |
| `app:{key}`, `app:{key}:{channel}`, `app:{key}:user:{id}` | `app.AppChannel` |
| `debug:{name}` (outside prod) | `debug.DebugChannel` |
"""

from __future__ import annotations

from functools import partial

from parley.api.socket.channels.app import AppChannel
from parley.api.socket.channels.conversation import ConversationChannel
from parley.api.socket.channels.debug import DebugChannel
from parley.api.socket.channels.listing import ListingChannel
from parley.api.socket.channels.ports import AppPort, ChannelPorts, ChatPort, ListingPort
from parley.api.socket.channels.private_chat import PrivateChatChannel
from parley.api.socket.channels.room_chat import RoomChatChannel
from parley.api.socket.channels.system import SystemChannel
from parley.api.socket.channels.user import UserChannel
from parley.api.socket.core.channel import ChannelFactory
from parley.api.socket.core.router import Router

__all__ = ["AppPort", "ChannelPorts", "ChatPort", "ListingPort", "routes"]


def routes(ports: ChannelPorts) -> Router:
    """The route table of Parley's channels over `ports`."""
    exact: dict[str, ChannelFactory] = {
        "room:chat": partial(RoomChatChannel, ports=ports),
        "system:general": SystemChannel,
    }
    prefixes: dict[str, ChannelFactory] = {
        "user": UserChannel,
        "private_chat": partial(PrivateChatChannel, ports=ports),
        "conversation": partial(ConversationChannel, ports=ports),
        "listing": partial(ListingChannel, ports=ports),
        "app": partial(AppChannel, ports=ports),
    }
    if ports.debug:
        prefixes["debug"] = DebugChannel
    return Router(exact, prefixes)
