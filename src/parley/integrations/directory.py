"""The applications a node knows, by key, in memory: what every trigger and end-user socket
consults instead of a query (DESIGN §4.2, docs/integrations.md "The application cache").

A key is read from the store once, then answered from memory for `integrations.app_cache_seconds`
(unknown keys too, at most `integrations.unknown_app_cache_size` of them, so that requests naming
garbage keys cost no query either). Every change made through this node (archive, secret
rotation, settings, an organization's new slug or its deletion) calls `forget` after its commit,
so the next look-up reads the new row; the expiry only bounds how long a change made on another
node takes to arrive.

A read that was under way while its key was forgotten does not store what it read (each key has
a generation, bumped by `forget`), so a stale row can never outlive the change that replaced it.

By numeric id (`get_by_id`, Pusher's `/apps/{app_id}`): an application's id and key never change,
so the directory remembers id -> key for every row it has read and answers by key from there; an
id it has never seen is read once to learn its key (an unknown id is remembered as unknown, like
an unknown key, for `app_cache_seconds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from parley.config import IntegrationsSettings
    from parley.store.applications import Application, ApplicationStore


_UNKNOWN_ID: Final = "#id:"
"""The entry of an unknown application id: `#id:{id}` (keys are hex, never hold `#`)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    application: Application | None
    expires: float


class ApplicationDirectory:
    """Application key -> the application's row (or None: no such key), cached."""

    def __init__(
        self,
        store: ApplicationStore,
        settings: IntegrationsSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = settings.app_cache_seconds
        self._max_unknown = settings.unknown_app_cache_size
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._unknown = 0
        self._generations: dict[str, int] = {}
        self._reading: dict[str, trio.Event] = {}
        """Keys being read now, and the event set when the read is over."""
        self._keys: dict[int, str] = {}
        """Application id -> its key, for every application read so far (neither ever changes)."""
        self.reads = 0
        """Store reads so far (a test and the bench check that triggers make none)."""

    def cached(self, app_key: str) -> Application | None:
        """The cached row, without a read (None when unknown, expired or not cached)."""
        entry = self._entries.get(app_key)
        if entry is None or entry.expires <= self._clock():
            return None
        return entry.application

    async def get(self, app_key: str) -> Application | None:
        """The application with this key (None: there is none), from memory when fresh.

        Concurrent look-ups of a key that is not fresh share one read: when a busy key expires,
        the triggers that arrive while it is re-read get the expired copy (a forgotten key has
        none: they wait for the read) instead of each sending a read of its own (measured in W7:
        at 1,500 triggers/s, one read each queued on the pool for seconds).
        """
        while True:
            entry = self._entries.get(app_key)
            if entry is not None and entry.expires > self._clock():
                return entry.application
            reading = self._reading.get(app_key)
            if reading is None:
                break
            if entry is not None:
                return entry.application  # expired, not forgotten: good while it is re-read
            await reading.wait()  # then the fresh entry, or (forgotten meanwhile) read again
        generation = self._generations.get(app_key, 0)
        done = self._reading[app_key] = trio.Event()
        self.reads += 1
        try:
            application = await self._store.get(app_key)
        finally:
            del self._reading[app_key]
            done.set()
        if self._generations.get(app_key, 0) == generation:
            self._put(app_key, application)
        return application

    async def get_by_id(self, app_id: int) -> Application | None:
        """The application with this numeric id (None: there is none), from memory when fresh."""
        key = self._keys.get(app_id)
        if key is not None:
            return await self.get(key)
        unknown = f"{_UNKNOWN_ID}{app_id}"  # no application key holds the marker
        entry = self._entries.get(unknown)
        if entry is not None and entry.expires > self._clock():
            return None
        self.reads += 1
        application = await self._store.get_by_id(app_id)
        if application is None:
            self._put(unknown, None)
            return None
        self._keys[app_id] = application.app_key
        # Through the key's own path, so that its generation guards what is cached.
        return await self.get(application.app_key)

    def forget(self, app_keys: Iterable[str]) -> None:
        """These keys changed (committed): the next look-up reads them again."""
        for app_key in app_keys:
            self._generations[app_key] = self._generations.get(app_key, 0) + 1
            self._drop(app_key)

    def _put(self, app_key: str, application: Application | None) -> None:
        self._drop(app_key)
        if application is None:
            if self._unknown >= self._max_unknown:
                self._evict_unknown()
            self._unknown += 1
        else:
            self._keys[application.id] = application.app_key
        self._entries[app_key] = _Entry(application, self._clock() + self._ttl)

    def _drop(self, app_key: str) -> None:
        old = self._entries.pop(app_key, None)
        if old is not None and old.application is None:
            self._unknown -= 1

    def _evict_unknown(self) -> None:
        """Forget the oldest half of the unknown keys (dicts keep insertion order)."""
        unknown = [key for key, entry in self._entries.items() if entry.application is None]
        for key in unknown[: max(1, len(unknown) // 2)]:
            self._drop(key)
