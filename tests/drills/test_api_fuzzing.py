"""Drill F1: schemathesis over every operation of the OpenAPI document, with every built-in check,
as an admin and as two registered users who each own things, and with no token at all.

A live `parley serve` (a subprocess: tests/drills/api_process.py) on a fresh database. Users A
and B register through the API and each gets conversations, listings, an organization with an
application and an API token (tests/drills/holdings.py); C is the bystander in their
conversations and is never fuzzed. Then, in this order (so the ownership checks see the things
untouched):
1. cross-user replays (BOLA): every operation whose path names A's things is sent with B's
   token, and B's with A's (tests/drills/api_fuzz.py says what counts as a leak); afterwards
   each owner reads its things back, and they must read as before;
2. anonymous probes: every operation that declares a bearer token, without one and with a bad one;
3. the fuzz: positive and negative cases of every operation as the admin, A and B.
Every answer is checked by every schemathesis check (conformance to the document, negative data
rejected, positive accepted, auth enforced, ...) and counted: the figures are the counts.

The full run (`slow`, at least 1,000 cases) is drill F1 of docs/reliability.md; a short run of the
same shape is in `make test`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok

from tests.drills.api_fuzz import (
    SHOWN,
    Tally,
    fuzz,
    probe_anonymously,
    replay_as_intruder,
)
from tests.drills.api_process import admin, parley_process, registered
from tests.drills.figures import figure
from tests.drills.holdings import furnish
from tests.drills.test_rest_authorization import read_table


@pytest.fixture
def live_api(database_url: str, tmp_path: Path) -> Iterator[str]:
    with parley_process(database_url, tmp_path) as base_url:
        yield base_url


def run_f1(
    base_url: str,
    fuzz_examples: dict[str, dict[GenerationMode, int]],
    replay_examples: int,
    min_cases: int,
) -> Tally:
    # An explicit (empty) configuration: no schemathesis.toml found on the way may change the run.
    schema = schemathesis.openapi.from_url(
        f"{base_url}/api/openapi.json", config=SchemathesisConfig.from_dict({})
    )
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself must be valid
        operations.append(result.ok())
    other_status = {route: row["other"] for route, row in read_table().items()}
    root = admin(base_url)
    a, b, c = (registered(base_url, name, os.urandom(6).hex()) for name in ("a", "b", "c"))
    owned = {a.name: furnish(a, c, root), b.name: furnish(b, c, root)}
    before = {name: holdings.snapshot() for name, holdings in owned.items()}
    tally = Tally()
    started = time.monotonic()

    for operation in operations:
        for intruder, owner in ((b, a), (a, b)):
            replay_as_intruder(
                operation, intruder, owned[owner.name], tally, replay_examples,
                other_status[operation.label],
            )  # fmt: skip
    for name, holdings in owned.items():
        if holdings.snapshot() != before[name]:
            tally.leaks.append(f"{name}'s things changed during the other's replays")
    for operation in operations:
        method, path = operation.label.split(" ", 1)
        security = schema.raw_schema["paths"][path][method.lower()].get("security")
        probe_anonymously(operation, security, owned[a.name], tally)
    identities = {"admin": root, "a": a, "b": b}
    for operation in operations:
        for name, examples in fuzz_examples.items():
            others = [h for owner, h in owned.items() if owner != name and name != "admin"]
            fuzz(operation, identities[name], tally, examples, others)

    elapsed = time.monotonic() - started
    summary = (
        f"F1: {tally.cases} cases ({tally.replays} cross-user replays) over"
        f" {len(tally.per_operation)}/{len(operations)} operations in {elapsed:.1f}s;"
        f" statuses {dict(sorted(tally.statuses.items()))};"
        f" {tally.unstated_rules} 422s on rules the document does not state;"
        f" replays on others' private things: {dict(sorted(tally.replay_statuses.items()))};"
        f" sign-ins {', '.join(f'{i.name} {i.logins}' for i in (root, a, b))}"
    )
    print(summary)
    Path(os.environ.get("PARLEY_SCHEMATHESIS_REPORT", "/dev/null")).write_text(summary + "\n")
    assert tally.cases >= min_cases
    assert len(tally.per_operation) == len(operations)  # every operation was exercised
    return tally


def report(tally: Tally, min_cases: int, tmp_path: Path) -> None:
    figure("F1", "cases", tally.cases, f">={min_cases}")
    figure("F1", "cross_user_replays", tally.replays, ">0")
    figure("F1", "5xx", tally.server_errors(), "0")
    figure("F1", "auth_ignored", len(tally.auth_ignored) + len(tally.failures["ignored_auth"]), "0")
    figure("F1", "cross_user_leaks", len(tally.leaks), "0")
    figure("F1", "cross_user_refusals_not_403_404", len(tally.not_refused), "0")
    figure("F1", "schema_violations", tally.schema_violations(), "0")
    other = tally.other_failures()
    figure("F1", "other_check_failures", sum(other.values()), "0")
    problems = tally.problems()
    listed = tmp_path / "problems.txt"
    listed.write_text("\n\n".join(problems))
    assert not problems, f"{len(problems)} problems (all in {listed}):\n\n" + "\n\n".join(
        problems[:SHOWN]
    )
    assert tally.server_errors() == 0


FULL_CASES = 1000


@pytest.mark.slow
def test_f1_schemathesis_over_every_operation_as_two_users_leaks_and_breaks_nothing(
    live_api: str, tmp_path: Path
) -> None:
    positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
    tally = run_f1(
        live_api,
        {
            "admin": {positive: 8, negative: 4},
            "a": {positive: 5, negative: 3},
            "b": {positive: 5, negative: 3},
        },
        replay_examples=3,
        min_cases=FULL_CASES,
    )
    report(tally, FULL_CASES, tmp_path)


SHORT_CASES = 250


def test_f1_short_schemathesis_run(live_api: str, tmp_path: Path) -> None:
    positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
    tally = run_f1(
        live_api,
        {"admin": {positive: 2, negative: 1}, "a": {positive: 1}, "b": {negative: 1}},
        replay_examples=1,
        min_cases=SHORT_CASES,
    )
    report(tally, SHORT_CASES, tmp_path)
