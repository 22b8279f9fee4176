"""The route table of Pusher sockets: `app:{key}:#users` is the sign-in (`signin`), every other
`app:` topic a channel (`channels`); a Pusher socket can name no other topic (`frames`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.api.socket.core.router import Router
from parley.api.socket.pusher.channels import PusherChannel
from parley.api.socket.pusher.frames import USERS_CHANNEL
from parley.api.socket.pusher.signin import SigninChannel
from parley.integrations import topics

if TYPE_CHECKING:
    from parley.api.socket.core.channel import Channel, ChannelSocket
    from parley.api.socket.pusher.sockets import PusherPorts


def pusher_routes(ports: PusherPorts) -> Router:
    """The Pusher protocol's routes over `ports`."""

    def make(socket: ChannelSocket, topic: str) -> Channel:
        parsed = topics.parse(topic)
        if parsed is not None and parsed.kind == "channel" and parsed.name == USERS_CHANNEL:
            return SigninChannel(socket, topic, ports)
        return PusherChannel(socket, topic, ports)

    return Router({}, {topics.PREFIX: make})
