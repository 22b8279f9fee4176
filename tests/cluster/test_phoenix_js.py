"""phoenix.js on two nodes of a cluster (issue 18's "must show"): tests/conformance/
cluster_two_nodes.mjs with the official client against nodes A and C over LISTEN/NOTIFY."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import trio

from tests.cluster.conftest import node_settings, start_nodes

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.trio,
    pytest.mark.skipif(
        NODE is None or not (CONFORMANCE / "node_modules" / "phoenix").exists(),
        reason="needs node and tests/conformance/node_modules (npm ci)",
    ),
]


async def test_phoenix_js_clients_on_two_nodes(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    a, c = await start_nodes(
        nursery,
        [node_settings(tmp_path, database_url, name, "postgres") for name in ("a", "c")],
    )
    alice, bob = await a.users(2)
    conversation = await a.group(alice, bob)
    fixture = {
        "a_socket": a.url,
        "c_socket": c.url,
        "a_http": a.http,
        "topic": f"conversation:{conversation}",
        "alice": {"id": alice.key, "token": alice.token},
        "bob": {"id": bob.key, "token": bob.token},
    }
    assert NODE is not None
    with trio.fail_after(120):
        result = await trio.run_process(
            [NODE, str(CONFORMANCE / "cluster_two_nodes.mjs"), json.dumps(fixture)],
            cwd=CONFORMANCE,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output
    assert output.strip().endswith("ok")
