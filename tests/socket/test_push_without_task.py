"""Chat sends answered through callbacks (`Chat.submit`, `Channel.handle_push`): what they
answer, how they start or retry the conversation's actor, and that a socket's events stay in
order."""

from __future__ import annotations

import uuid

import trio
import trio.testing

from parley.actors.chat import ChatUnavailable, NotAMember, Written
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime

Answer = Written | NotAMember | ChatUnavailable


class Answers:
    """Collects what `submit` answers, and lets a test wait for it."""

    def __init__(self) -> None:
        self.got: list[Answer] = []
        self._arrived = trio.Event()

    def __call__(self, answer: Answer) -> None:
        self.got.append(answer)
        self._arrived.set()

    async def one(self) -> Answer:
        with trio.fail_after(5):
            await self._arrived.wait()
        (answer,) = self.got
        return answer


async def running_conversation(realtime: Realtime) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Two members of a group whose conversation actor is running (one message sent)."""
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    await realtime.runtime.chat.send(cid, alice.id, "first", None)
    return cid, alice.id, bob.id


async def test_submit_starts_a_conversation_that_is_not_running(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    assert realtime.runtime.registry.lookup(f"conversation:{cid}") is None
    answers = Answers()
    realtime.runtime.chat.submit(cid, alice.id, "hi", None, answers)
    written = await answers.one()
    assert isinstance(written, Written) and written.message.seq == 1
    assert realtime.runtime.registry.lookup(f"conversation:{cid}") is not None


async def test_submit_answers_the_stored_row_and_resends(realtime: Realtime) -> None:
    cid, alice, _ = await running_conversation(realtime)
    chat = realtime.runtime.chat
    first = Answers()
    chat.submit(cid, alice, "hello", "c-1", first)
    written = await first.one()
    assert isinstance(written, Written) and not written.duplicate
    assert (written.message.seq, written.message.body) == (2, "hello")
    again = Answers()
    chat.submit(cid, alice, "hello (resent)", "c-1", again)
    resent = await again.one()
    assert isinstance(resent, Written) and resent.duplicate
    assert resent.message.id == written.message.id and resent.message.body == "hello"
    # Two in flight at once with the same client id: the second waits on the first's batch.
    one, two = Answers(), Answers()
    chat.submit(cid, alice, "twice", "c-2", one)
    chat.submit(cid, alice, "twice", "c-2", two)
    a, b = await one.one(), await two.one()
    assert isinstance(a, Written) and isinstance(b, Written)
    assert a.message.id == b.message.id and (a.duplicate, b.duplicate) == (False, True)


async def test_submit_refuses_a_non_member(realtime: Realtime) -> None:
    cid, _, _ = await running_conversation(realtime)
    stranger = await realtime.user()
    answers = Answers()
    realtime.runtime.chat.submit(cid, stranger.id, "let me in", None, answers)
    assert isinstance(await answers.one(), NotAMember)


async def test_submit_retries_what_the_actor_never_had_on_its_next_incarnation(
    realtime: Realtime,
) -> None:
    cid, alice, _ = await running_conversation(realtime)
    chat = realtime.runtime.chat
    ref = realtime.runtime.registry.lookup(f"conversation:{cid}")
    assert ref is not None
    # The actor reloads its members for this message (a database query) and is killed meanwhile:
    # the message never reached the writer, so it goes once more, to the restarted actor.
    await chat.reload_members(cid)
    answers = Answers()
    chat.submit(cid, alice, "again", None, answers)
    await trio.testing.wait_all_tasks_blocked()
    ref.kill("test: down before forwarding")
    written = await answers.one()
    assert isinstance(written, Written) and not written.duplicate
    assert written.message.seq == 2
    stored = await realtime.context.stores.messages.after(cid, after_seq=0, limit=10)
    assert [m.body for m in stored] == ["first", "again"]


async def test_socket_pushes_keep_their_order_behind_each_other_and_a_leave(
    realtime: Realtime,
) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
    ):
        await ca.join(topic)
        await cb.join(topic)
        assert (await ca.push(topic, "new_msg", {"body": "m0"})).ok  # starts the actor
        refs = [await ca.push_nowait(topic, "new_msg", {"body": f"m{n}"}) for n in range(1, 21)]
        bad = await ca.push_nowait(topic, "new_msg", {"body": "   "})
        leave_ref = ca.next_ref()
        await ca.send_frame(ca.join_refs[topic], leave_ref, topic, "phx_leave", {})
        assert (await ca.wait_reply(leave_ref, topic=topic)).ok
        # Every push was answered before the leave, in order, with consecutive seqs.
        replies = [m for m in ca.inbox if m.event == "phx_reply"]
        assert [m.ref for m in replies] == [*refs, bad]
        assert [m.payload["response"]["seq"] for m in replies[:-1]] == list(range(2, 22))
        assert replies[-1].payload["response"]["reason"] == "invalid"
        await ca.receive("phx_close", topic)
        seen = [(await cb.receive("new_msg", topic)).payload["seq"] for _ in range(21)]
        assert seen == list(range(1, 22))


class HandlerTasks(trio.abc.Instrument):
    """Counts the channel handler tasks started (`ChannelInstance._work`)."""

    def __init__(self) -> None:
        self.started = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("ChannelInstance._work"):
            self.started += 1


async def test_pushes_queued_behind_one_in_flight_take_no_task(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    async with open_phoenix_client(realtime.url, token=alice.token) as ca:
        await ca.join(topic)
        assert (await ca.push(topic, "new_msg", {"body": "m0"})).ok  # starts the actor
        tasks = HandlerTasks()
        trio.lowlevel.add_instrument(tasks)
        try:
            # Sent at once: all but the first arrive while one is waiting for its commit.
            refs = [await ca.push_nowait(topic, "new_msg", {"body": f"m{n}"}) for n in range(1, 31)]
            replies = [await ca.wait_reply(ref, topic=topic) for ref in refs]
        finally:
            trio.lowlevel.remove_instrument(tasks)
        assert [r.response["seq"] for r in replies] == list(range(2, 32))
        assert tasks.started == 0
