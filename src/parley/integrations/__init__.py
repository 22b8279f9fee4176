"""Integrations (DESIGN §4.2, ExPusherLite): organizations, applications, the signing of triggers
and end-user tokens, and triggers. Rules only: the SQL is `parley.store.organizations` and
`parley.store.applications`, HTTP and frames are `parley.api`."""
