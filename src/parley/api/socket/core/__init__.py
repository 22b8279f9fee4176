"""The channel core: channels, joins, sessions, outbound queues, routing, the hub, and the
transport contract. It knows no chat, no frame format and no transport."""
