"""Drill R5: a model-based test. Hypothesis drives one conversation of a live Parley through
join / leave / send / edit / delete / add member / remove member / read / reconnect / kill actor,
and an in-memory model says what must be true after every step.

Invariants: seq has no gaps, each message is stored once, a member's socket gets every message
(live or as catch-up), nobody gets a live message sent while they were not a member, and every
member's unread count is what the model counts. The machine runs in a worker thread; each step
runs on the trio side (`trio.from_thread.run`), where the server and the sockets live.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.drills.figures import figure
from tests.drills.live import start_parley
from tests.drills.wire import DrillSocket, drill_socket
from tests.socket.conftest import Realtime, User

T = TypeVar("T")
PEOPLE = 4
"""The owner (0) and three others, each with at most one socket."""


@dataclass
class Stored:
    sender: int
    body: str
    deleted: bool = False


@dataclass
class Held:
    """A socket kept open by a task of its own until `closed` is set."""

    socket: DrillSocket
    closed: trio.Event = field(default_factory=trio.Event)


class Drive:
    """The trio side: the server, an HTTP client and the sockets, run in the test's nursery."""

    def __init__(self, live: Realtime, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
        self.live, self.http, self.nursery = live, http, nursery

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args)

    async def open_socket(self, token: str) -> Held:
        async def hold(task_status: trio.TaskStatus[Held]) -> None:
            async with drill_socket(self.live.url, token) as socket:
                held = Held(socket)
                task_status.started(held)
                await held.closed.wait()

        held: Held = await self.nursery.start(hold)
        return held


class ConversationMachine(RuleBasedStateMachine):
    drive: Drive
    examples = 0
    steps = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).examples += 1
        self.users: list[User] = self.drive.run(self.drive.live.users, PEOPLE)
        owner = self.users[0]
        self.conversation_id: uuid.UUID = self.drive.run(
            self.drive.live.group, owner, self.users[1]
        )
        self.topic = f"conversation:{self.conversation_id}"
        self.members = {0, 1}
        self.messages: dict[int, Stored] = {}
        self.read = dict.fromkeys(range(PEOPLE), 0)
        self.sockets: dict[int, Held] = {}
        self.joined: set[int] = set()
        self.forbidden: dict[int, set[int]] = {person: set() for person in range(PEOPLE)}
        """Per person, the seqs sent while they were not a member."""

    # -- helpers --------------------------------------------------------------------------

    def _http(self, person: int, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.users[person].token}"}
        url = f"/api/conversations/{self.conversation_id}{path}"
        return self.drive.run(partial(self.drive.http.request, method, url, json=body,
                                      headers=headers))  # fmt: skip

    def _record(self, person: int, seq: int, body: str) -> None:
        assert seq == len(self.messages) + 1, f"seq {seq} after {len(self.messages)}: a gap"
        self.messages[seq] = Stored(person, body)
        for outsider in set(range(PEOPLE)) - self.members:
            self.forbidden[outsider].add(seq)

    def _sync(self, person: int) -> None:
        """Until everything sent before now has reached `person`'s socket."""
        held = self.sockets[person]
        reply = self.drive.run(held.socket.request, "phoenix", "heartbeat", {})
        assert reply is not None and reply.status == "ok"

    def _seen_live(self, person: int) -> set[int]:
        held = self.sockets.get(person)
        if held is None:
            return set()
        return set().union(*held.socket.live.values())

    # -- rules ----------------------------------------------------------------------------

    @rule(person=st.integers(0, PEOPLE - 1))
    def connect(self, person: int) -> None:
        if person in self.sockets:
            return
        self.sockets[person] = self.drive.run(self.drive.open_socket, self.users[person].token)
        self.drive.run(self.sockets[person].socket.join, f"user:{self.users[person].id}")

    @rule(person=st.integers(0, PEOPLE - 1))
    def join(self, person: int) -> None:
        held = self.sockets.get(person)
        if held is None or person in self.joined:
            return
        last_seq = max(held.socket.seqs[self.topic], default=0)
        reply = self.drive.run(held.socket.join, self.topic, {"last_seq": last_seq})
        assert reply is not None
        assert (reply.status == "ok") == (person in self.members), (person, reply)
        if reply.status == "ok":
            self.joined.add(person)

    @rule(person=st.integers(0, PEOPLE - 1))
    def leave(self, person: int) -> None:
        if person not in self.joined:
            return
        held = self.sockets[person]
        reply = self.drive.run(held.socket.request, self.topic, "phx_leave", {})
        assert reply is not None and reply.status == "ok"
        held.socket.join_refs.pop(self.topic, None)
        self.joined.discard(person)

    @rule(person=st.integers(0, PEOPLE - 1), over_socket=st.booleans())
    def send(self, person: int, over_socket: bool) -> None:
        body = f"m{len(self.messages) + 1}-{person}"
        client_id = uuid.uuid4().hex
        if over_socket and person in self.joined:
            reply = self.drive.run(
                self.sockets[person].socket.request,
                self.topic,
                "new_msg",
                {"body": body, "client_id": client_id},
            )
            assert reply is not None and reply.status == "ok", reply
            self._record(person, reply.response["seq"], body)
            return
        response = self._http(person, "POST", "/messages", {"body": body, "client_id": client_id})
        if person in self.members:
            assert response.status_code == 201, response.text
            self._record(person, response.json()["seq"], body)
        else:
            assert response.status_code == 404, response.text

    @precondition(lambda self: bool(self.messages))
    @rule(person=st.integers(0, PEOPLE - 1), pick=st.integers(0, 10_000), delete=st.booleans())
    def edit_or_delete(self, person: int, pick: int, delete: bool) -> None:
        seq = 1 + pick % len(self.messages)
        stored = self.messages[seq]
        allowed = person in self.members and stored.sender == person and not stored.deleted
        if delete:
            response = self._http(person, "DELETE", f"/messages/{seq}")
        else:
            response = self._http(person, "PATCH", f"/messages/{seq}", {"body": "edited"})
        if allowed:
            assert response.status_code == 200, response.text
            if delete:
                stored.deleted = True
            else:
                stored.body = "edited"
        else:
            assert response.status_code in (403, 404, 409), (response.status_code, response.text)

    @rule(person=st.integers(1, PEOPLE - 1))
    def add_member(self, person: int) -> None:
        if person in self.members:
            return
        response = self._http(0, "POST", "/members", {"user_ids": [str(self.users[person].id)]})
        assert response.status_code == 200, response.text
        self.members.add(person)
        self.read[person] = 0

    @rule(person=st.integers(1, PEOPLE - 1))
    def remove_member(self, person: int) -> None:
        if person not in self.members:
            return
        response = self._http(0, "DELETE", f"/members/{self.users[person].id}")
        assert response.status_code == 204, response.text
        self.members.discard(person)
        if person in self.joined:
            self.joined.discard(person)  # the server closes the channel (phx_close)

    @precondition(lambda self: bool(self.messages))
    @rule(person=st.integers(0, PEOPLE - 1))
    def mark_read(self, person: int) -> None:
        last = len(self.messages)
        response = self._http(person, "POST", "/read", {"seq": last})
        if person in self.members:
            assert response.status_code == 200, response.text
            self.read[person] = max(self.read[person], last)
        else:
            assert response.status_code == 404, response.text

    @rule(person=st.integers(0, PEOPLE - 1))
    def reconnect(self, person: int) -> None:
        held = self.sockets.pop(person, None)
        if held is None:
            return
        seen = set(held.socket.seqs[self.topic])
        trio.from_thread.run_sync(held.closed.set)
        was_joined = person in self.joined
        self.joined.discard(person)
        self.connect(person)
        self.sockets[person].socket.seqs[self.topic] |= seen
        if was_joined:
            self.join(person)

    @rule()
    def kill_actor(self) -> None:
        ref = self.drive.live.runtime.registry.lookup(self.topic)
        if ref is not None and ref.running:
            ref.kill("drill R5")

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def nobody_gets_a_live_message_sent_while_they_were_not_a_member(self) -> None:
        type(self).steps += 1
        for person in self.sockets:
            leaked = self._seen_live(person) & self.forbidden[person]
            assert not leaked, f"person {person} got seqs {sorted(leaked)} as an outsider"

    @invariant()
    def joined_members_have_every_message(self) -> None:
        for person in self.joined:
            self._sync(person)
            missing = set(self.messages) - self.sockets[person].socket.seqs[self.topic]
            assert not missing, f"person {person} misses seqs {sorted(missing)}"

    def teardown(self) -> None:
        try:
            self._check_store()
        finally:
            for held in self.sockets.values():
                trio.from_thread.run_sync(held.closed.set)

    def _check_store(self) -> None:
        limit = len(self.messages) + 1
        response = self._http(0, "GET", f"/messages?limit={limit}")
        assert response.status_code == 200, response.text
        history = {row["seq"]: row for row in response.json()["data"]}
        assert sorted(history) == list(range(1, len(self.messages) + 1)), "seq gaps or doubles"
        for seq, stored in self.messages.items():
            row = history[seq]
            assert (row["deleted_at"] is not None) == stored.deleted, (seq, row)
            if not stored.deleted:
                assert row["body"] == stored.body, (seq, row)
        for person in self.members:
            headers = {"Authorization": f"Bearer {self.users[person].token}"}
            listed = self.drive.run(partial(self.drive.http.get, "/api/conversations",
                                            headers=headers))  # fmt: skip
            (summary,) = [c for c in listed.json()["data"] if c["id"] == str(self.conversation_id)]
            expected = sum(
                1
                for seq, stored in self.messages.items()
                if seq > self.read[person] and not stored.deleted and stored.sender != person
            )
            assert summary["unread_count"] == expected, (person, summary["unread_count"], expected)


async def run_machine(
    database_url: str, tmp_path: Path, nursery: trio.Nursery, *, examples: int, steps: int
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    async with httpx.AsyncClient(base_url=live.http, timeout=30) as http:
        ConversationMachine.drive = Drive(live, http, nursery)
        ConversationMachine.examples = ConversationMachine.steps = 0
        run = partial(
            run_state_machine_as_test,
            ConversationMachine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                derandomize=True,  # a fixed seed: every run tries the same sequences
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
        await trio.to_thread.run_sync(run)
    figure("R5", "examples_x_steps", f"{ConversationMachine.examples}x{steps}",
           f">={examples}x{steps}")  # fmt: skip
    figure("R5", "checked_steps", ConversationMachine.steps, f">={examples * steps // 2}")
    figure("R5", "invariant_violations", 0, "0")  # any violation fails the run above


async def test_r5_short_model_based_run(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    await run_machine(database_url, tmp_path, nursery, examples=5, steps=20)


@pytest.mark.slow
async def test_r5_model_based_200_examples_of_50_steps(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    await run_machine(database_url, tmp_path, nursery, examples=200, steps=50)
