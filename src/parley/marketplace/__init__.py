"""The marketplace (Daveslist, DESIGN §4.1): listing and reply rules, search parameters, the
permission table, and what is published to sellers and watchers. Pure rules apart from
`events`, which publishes through the pubsub it is handed."""
