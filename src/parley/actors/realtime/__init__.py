"""Realtime delivery: pubsub and presence, and the cluster adapters under them (DESIGN §8).

`pubsub` and `presence` are what a single node runs (`cluster.adapter = "none"`: nothing else is
on their path). `cluster` puts a bus under both when the adapter is `postgres` or `redis`: envelopes
out after commit, envelopes in fanned out locally, per-conversation seq order, presence of the
other nodes, and the liveness of the bus itself.
"""
