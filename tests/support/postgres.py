"""A private, throwaway PostgreSQL cluster for the test session.

``initdb`` + ``pg_ctl`` in a temporary directory, on a free TCP port bound to 127.0.0.1, with
durability switched off (the data is discarded anyway). PostgreSQL refuses to run as root, so when
the suite runs as root every path is handed to the ``postgres`` system user and the server
binaries run as that user.

Missing binaries are an error, never a skip: see tests/conftest.py.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

SERVER_USER = "postgres"
_START_ATTEMPTS = 5
_LOG_TAIL_LINES = 40
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INSTALL_HINT = (
    "PostgreSQL 15 server binaries (initdb, pg_ctl, postgres) were not found. Install PostgreSQL 15 "
    "(on Debian/Ubuntu: `apt-get install -y postgresql`, which scripts/bootstrap runs) or put its bin "
    "directory on PATH."
)


def find_server_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Order: ``pg_config --bindir`` (if it has initdb; Debian's pg_config belongs to the client
    package and may point elsewhere), the newest ``/usr/lib/postgresql/*/bin``, then PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=_version_key, reverse=True)
    candidates.extend(Path(p) for p in versioned)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    for candidate in candidates:
        if all(_is_executable(candidate / name) for name in ("initdb", "pg_ctl", "postgres")):
            return candidate
    raise RuntimeError(_INSTALL_HINT)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _traversable_by_others(path: Path) -> bool:
    """True when every ancestor of ``path`` can be entered by an unrelated user."""
    for directory in [path, *path.parents]:
        try:
            mode = directory.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


class ThrowawayPostgres:
    """A PostgreSQL server in a temp dir, alive between :meth:`start` and :meth:`stop`."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_server_bindir()
        self.port: int | None = None
        self.root: Path | None = None
        self._as_root = os.geteuid() == 0
        self._uid: int | None = None
        self._gid: int | None = None
        if self._as_root:
            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, but there is no {SERVER_USER!r} system user to run the server "
                    f"as. {_INSTALL_HINT}"
                ) from None
            self._uid, self._gid = entry.pw_uid, entry.pw_gid

    # -- paths -----------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root() / "sock"

    @property
    def log_file(self) -> Path:
        return self._root() / "server.log"

    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster has not been started")
        return self.root

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ThrowawayPostgres:
        if self.root is not None:
            raise RuntimeError("the cluster is already started")
        base = None
        if self._as_root and not _traversable_by_others(Path(tempfile.gettempdir())):
            base = "/tmp"  # the server user must be able to reach its own directory
        self.root = Path(tempfile.mkdtemp(prefix="x402-pg-", dir=base))
        try:
            for directory in (self.data_dir, self.socket_dir):
                directory.mkdir(mode=0o700)
            self.log_file.touch(mode=0o600)
            os.chmod(self.root, 0o700)
            if self._as_root:
                for path in (self.root, self.data_dir, self.socket_dir, self.log_file):
                    os.chown(path, self._uid, self._gid)  # type: ignore[arg-type]
            self._initdb()
            self._start_server()
        except BaseException:
            self._kill_leftover_server()
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.port = None
            raise
        return self

    def stop(self) -> None:
        """Fast shutdown, then remove every file. Safe to call twice."""
        if self.root is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                result = self._run(
                    [self.bindir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "-t", "30", "stop"],
                    check=False,
                )
                if result.returncode != 0:
                    self._kill_leftover_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.port = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise RuntimeError("the cluster has not been started")
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        if not _DATABASE_NAME.match(name):
            raise ValueError(f"not a plain lower-case database name: {name!r}")
        if self.port is None:
            raise RuntimeError("the cluster has not been started")
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SERVER_USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def server_pid(self) -> int:
        """The postmaster's process id, from ``postmaster.pid``."""
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    # -- internals -------------------------------------------------------------------------------

    def _initdb(self) -> None:
        result = self._run(
            [
                self.bindir / "initdb",
                "-D", self.data_dir,
                "-U", SERVER_USER,
                "-A", "trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")

    def _start_server(self) -> None:
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            options = (
                f"-p {port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            result = self._run(
                [
                    self.bindir / "pg_ctl",
                    "-D", self.data_dir,
                    "-l", self.log_file,
                    "-o", options,
                    "-w", "-t", "30",
                    "start",
                ],
                check=False,
            )
            if result.returncode == 0:
                self.port = port
                return
            log_tail = self._log_tail()
            last_error = (
                f"pg_ctl start on port {port} failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- server log tail ({self.log_file}) ---\n{log_tail}"
            )
            self._kill_leftover_server()
            if "could not bind" not in log_tail and "already in use" not in log_tail:
                break  # not a port race: retrying would fail the same way
            time.sleep(0.05)
        raise RuntimeError(last_error)

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError as error:
            return f"(could not read the server log: {error})"
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _kill_leftover_server(self) -> None:
        """Last resort when pg_ctl could not stop our own postmaster."""
        if self.root is None:
            return
        try:
            pid = self.server_pid()
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown; children follow their postmaster
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def _run(self, argv: list[str | Path], *, check: bool) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, object] = {}
        if self._as_root:
            entry = pwd.getpwuid(self._uid)  # type: ignore[arg-type]
            env.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
            kwargs.update(user=self._uid, group=self._gid, extra_groups=[])
        return subprocess.run(
            [str(part) for part in argv],
            cwd=self._root(),
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
            **kwargs,  # type: ignore[arg-type]
        )
