"""Which channel handles a topic: exact topics first, then `kind:` prefixes (Phoenix's
`channel "room:*", RoomChannel`). The table is the application's, built at the composition root
(`parley.api.socket.channels.routes`); the session only asks it."""

from __future__ import annotations

from collections.abc import Mapping

from parley.api.socket.core.channel import ChannelFactory


class Router:
    """Topic -> channel factory, or None for a topic nobody handles (-> "unmatched topic")."""

    def __init__(
        self,
        exact: Mapping[str, ChannelFactory],
        prefixes: Mapping[str, ChannelFactory],
    ) -> None:
        self._exact = dict(exact)
        self._prefixes = dict(prefixes)

    def route(self, topic: str) -> ChannelFactory | None:
        """The factory for `topic`; a prefix needs a non-empty rest (`conversation:` alone is
        unmatched, §14 item 11)."""
        exact = self._exact.get(topic)
        if exact is not None:
            return exact
        kind, sep, rest = topic.partition(":")
        if not sep or not rest:
            return None
        return self._prefixes.get(kind)
