"""PostgreSQL servers of a test's own, in temporary directories on free ports: a primary with TLS
(a certificate made for the test) and SCRAM passwords, and a hot standby streaming from it.

They run the newest PostgreSQL found under /usr/lib/postgresql (Debian's packages, built with
OpenSSL), or else pgserver's bundled binaries (built without it: TLS tests skip then). As root,
the servers run as the `postgres` (or `pgserver`) system user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pgserver
import pytest


@dataclass(frozen=True)
class Binaries:
    bin: Path
    tls: bool
    """Built with OpenSSL (`ssl = on` works)."""


def find_binaries() -> Binaries:
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / "postgres").exists() and (directory / "pg_basebackup").exists():
            configure = subprocess.run(
                [directory / "pg_config", "--configure"], capture_output=True, text=True
            ).stdout
            return Binaries(directory, "openssl" in configure)
    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return Binaries(bundled, False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA and a server certificate it signed for `localhost` and 127.0.0.1 (one day)."""
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, request = directory / "server.crt", directory / "server.key", directory / "req"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1",
         "-subj", "/CN=parley test CA"])  # fmt: skip
    run(["openssl", "req", *ec, "-keyout", key, "-out", request, "-subj", "/CN=localhost"])
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(["openssl", "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", extensions])  # fmt: skip
    return Certificates(ca, cert, key)


def run(command: list[str | Path], **options: object) -> None:
    subprocess.run(command, check=True, capture_output=True, **options)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Server:
    data: Path
    port: int
    socket_dir: Path

    def dsn(self, *, user: str = "postgres", dbname: str = "postgres", **params: str) -> str:
        words = {"host": "127.0.0.1", "port": str(self.port), "user": user, "dbname": dbname}
        return " ".join(f"{key}={value}" for key, value in (words | params).items())

    def url(self, *, dbname: str = "postgres") -> str:
        """A URL for asyncpg, over the Unix socket (as the trusted superuser)."""
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port={self.port}"


HBA = """\
local all all trust
local replication all trust
hostssl all parley_tls 127.0.0.1/32 scram-sha-256
hostnossl all parley_tls 127.0.0.1/32 reject
host all parley_scram 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""


class Servers:
    """Starts servers under one temporary directory and stops them all at the end."""

    def __init__(self, root: Path, binaries: Binaries) -> None:
        self.root = root
        self.binaries = binaries
        self._running: list[Path] = []
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "pgserver"):
                try:
                    self._user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            else:
                pytest.skip("running as root and no postgres system user to run a server as")
            os.chown(root, self._user.pw_uid, self._user.pw_gid)

    def _run(self, tool: str, *args: str | Path) -> None:
        user = self._user.pw_uid if self._user else None
        run([self.binaries.bin / tool, *args], user=user, cwd=self.root)

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def primary(self, name: str, *, certificates: Certificates | None = None) -> Server:
        data = self.root / name
        self._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync",
                  "--encoding=UTF8", "--locale=C")  # fmt: skip
        (data / "pg_hba.conf").write_text(HBA)
        settings = ["listen_addresses = '127.0.0.1'", "fsync = off"]
        if certificates is not None:
            for source in (certificates.cert, certificates.key):
                target = data / source.name
                shutil.copy(source, target)
                target.chmod(0o600)
                self._own(target)
            settings += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        with open(data / "postgresql.conf", "a") as conf:
            conf.write("".join(f"{line}\n" for line in settings))
        return self._start(data)

    def standby(self, name: str, primary: Server) -> Server:
        """A hot standby of `primary`, from a base backup, streaming from it."""
        data = self.root / name
        self._run("pg_basebackup", "-D", data, "-h", primary.socket_dir, "-p", str(primary.port),
                  "-U", "postgres", "-R", "-X", "stream", "--no-sync")  # fmt: skip
        return self._start(data)

    def _start(self, data: Path) -> Server:
        port = free_port()
        socket_dir = Path(tempfile.mkdtemp(prefix="pgsock-", dir=self.root))
        self._own(socket_dir)
        options = f"-p {port} -k {socket_dir}"
        self._run("pg_ctl", "start", "-w", "-t", "120", "-D", data, "-l", data / "log", "-o",
                  options)  # fmt: skip
        self._running.append(data)
        return Server(data, port, socket_dir)

    def stop_all(self) -> None:
        for data in reversed(self._running):
            self._run("pg_ctl", "stop", "-m", "immediate", "-D", data)
        self._running.clear()


@contextmanager
def servers() -> Iterator[Servers]:
    """A `Servers` in a fresh directory (traversable by the server's user), removed after."""
    root = Path(tempfile.mkdtemp(prefix="parley-pg-"))
    root.chmod(0o755)
    started = Servers(root, find_binaries())
    try:
        yield started
    finally:
        try:
            started.stop_all()
        finally:
            shutil.rmtree(root, ignore_errors=True)
