"""The Pusher Channels protocol (PUSHER_PROTOCOL.md, docs/pusher.md): a second wire protocol over
the one channel core, at `/app/{app_key}`.

* `frames`: Pusher's JSON frames as the core's messages (the serializer), its close codes.
* `rules`: channel kinds and names, subscription and sign-in signatures, `channel_data` and
  `user_data` (pure: no I/O).
* `connect`: the upgrade decision (app key, protocol version, archive, quota) and the connection's
  own state (`PusherConnection`: socket id, signed-in user, client-event rate).
* `channels`: a subscription (public, private, encrypted, presence, cache), client events.
* `members`: presence diffs as Pusher's per-user `member_added` / `member_removed`.
* `signin`: `pusher:signin`, the watchlist.
* `sockets`: the routes, what the channels are given, and the index of this node's Pusher
  subscriptions by socket id (the `socket_id` exclusion of triggers).
"""
