"""`GET /metrics`: Prometheus text exposition of the live system (DESIGN §6).

Counters are read from the parts that keep them (actor refs, the writer, pubsub, the socket layer);
nothing here counts anything itself, so scraping costs one pass over the actor directory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from quart import Blueprint, Response

from parley.api.context import parley_context
from parley.api.debug import operator_only

blueprint = Blueprint("metrics", __name__)


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> str:
    """One metric family; each sample is (name suffix and labels, value)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{suffix} {value:g}" for suffix, value in samples]
    return "\n".join(lines)


def _label(**labels: str) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return "{" + inner + "}" if inner else ""


def render() -> str:
    runtime = parley_context().runtime
    actors = runtime.system.directory.all()
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for stats in actors:
        totals = by_kind[stats.kind]
        totals[0] += 1
        totals[1] += stats.mailbox_depth
        totals[2] += stats.processed
        totals[3] += stats.restarts
        totals[4] += stats.dropped
    writer = runtime.writer.statistics()
    buckets = []
    cumulative = 0
    for bucket, count in writer.batch_sizes.items():
        cumulative += count
        upper = bucket.split("-")[-1]
        buckets.append((_label(le=upper), float(cumulative)))
    buckets.append((_label(le="+Inf"), float(writer.batches)))
    pubsub = runtime.pubsub.statistics()
    families = [
        _family(
            "parley_actors",
            "gauge",
            "Live actors by kind.",
            [(_label(kind=k), v[0]) for k, v in sorted(by_kind.items())],
        ),
        _family(
            "parley_mailbox_depth",
            "gauge",
            "Messages waiting in mailboxes, by actor kind.",
            [(_label(kind=k), v[1]) for k, v in sorted(by_kind.items())],
        ),
        _family(
            "parley_actor_messages_total",
            "counter",
            "Messages handled, by actor kind.",
            [(_label(kind=k), v[2]) for k, v in sorted(by_kind.items())],
        ),
        _family(
            "parley_actor_restarts_total",
            "counter",
            "Actor restarts, by kind.",
            [(_label(kind=k), v[3]) for k, v in sorted(by_kind.items())],
        ),
        _family(
            "parley_mailbox_overflows_total",
            "counter",
            "Casts refused by a full mailbox.",
            [(_label(kind=k), v[4]) for k, v in sorted(by_kind.items())],
        ),
        _family(
            "parley_writer_messages_total",
            "counter",
            "Messages persisted by the writer.",
            [("", writer.messages)],
        ),
        _family(
            "parley_writer_failed_messages_total",
            "counter",
            "Messages the writer failed.",
            [("", writer.failed_messages)],
        ),
        _family(
            "parley_writer_batch_size",
            "histogram",
            "Messages per committed batch.",
            [
                *[(f"_bucket{labels}", v) for labels, v in buckets],
                ("_count", writer.batches),
                ("_sum", writer.messages),
            ],
        ),
        _family(
            "parley_writer_commit_seconds_total",
            "counter",
            "Time spent in batch commits.",
            [("", writer.commit_seconds_total)],
        ),
        _family(
            "parley_pubsub_broadcasts_total",
            "counter",
            "Broadcasts published.",
            [("", pubsub.broadcasts)],
        ),
        _family(
            "parley_pubsub_deliveries_total",
            "counter",
            "Broadcasts handed to subscribers.",
            [("", pubsub.deliveries)],
        ),
        _family(
            "parley_pubsub_subscriptions",
            "gauge",
            "Topic subscriptions.",
            [("", pubsub.subscriptions)],
        ),
    ]
    return "\n".join(families) + "\n"


@blueprint.get("/metrics")
@operator_only
async def metrics() -> Response:
    return Response(render(), content_type="text/plain; version=0.0.4; charset=utf-8")
