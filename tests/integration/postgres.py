"""A throw-away PostgreSQL cluster: Debian's server binaries, an unprivileged user, 127.0.0.1.

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to ``nobody``
and lives in a private folder under /tmp (pytest's own tmp folders are root's alone).
Administration goes over the cluster's Unix socket as the superuser, as
``sudo -u postgres psql`` does on a Debian server; MLflow connects over TCP with a password.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.processes import free_port, start_logged, stop, wait_until

SERVER_PROGRAMS = ("initdb", "postgres", "pg_isready", "psql", "createdb")
INSTALL_HINT = "bash scripts/install-postgresql.sh (Debian: apt-get install postgresql)"


def server_bin_dir() -> Path | None:
    """The folder of the newest installed server (Debian: /usr/lib/postgresql/<major>/bin)."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: [int(n) for n in re.findall(r"\d+", path.parent.name)] or [0],
    )
    on_path = [Path(found).resolve().parent for found in [shutil.which("initdb")] if found]
    for folder in [*reversed(debian), *on_path]:
        if all((folder / program).is_file() for program in SERVER_PROGRAMS):
            return folder
    return None


@dataclass(frozen=True)
class Cluster:
    bin_dir: Path
    socket_dir: Path
    port: int
    log: Path

    def admin(self, program: str, *args: str) -> str:
        """Run a client program as the superuser over the socket; its stdout."""
        command = [str(self.bin_dir / program), *self._superuser(), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def ready(self) -> bool:
        command = [str(self.bin_dir / "pg_isready"), "-q", *self._superuser()]
        return subprocess.run(command, check=False, timeout=30).returncode == 0

    def _superuser(self) -> list[str]:
        return ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres"]


def _owner() -> dict[str, Any]:
    """Popen arguments that drop root to ``nobody`` (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[Cluster]:
    """initdb a cluster, run ``postgres`` on a free 127.0.0.1 port; always stop and delete it."""
    owner = _owner()
    # 0700, in /tmp under root: nobody may not pass through $TMPDIR or pytest's folders.
    root = Path(tempfile.mkdtemp(prefix="chest-xray-pg-", dir="/tmp" if owner else None))
    try:
        if owner:
            os.chown(root, owner["user"], owner["group"])
        log = root / "postgres.log"
        # Superuser "postgres" over the socket (as Debian's peer login), passwords over TCP.
        initdb = subprocess.run(
            [
                *(str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres"),
                *("--auth-local=trust", "--auth-host=scram-sha-256"),
                *("--encoding=UTF8", "--no-locale", "--no-sync"),
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            **owner,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr}")
        port = free_port()
        command = [
            *(str(bin_dir / "postgres"), "-D", str(root / "data"), "-p", str(port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}"),
            *("-c", "fsync=off"),  # a throw-away cluster; never on a real server
        ]
        process = start_logged(command, log, cwd=root, **owner)
        try:
            cluster = Cluster(bin_dir, root, port, log)
            wait_until(cluster.ready, process, "postgres", log)
            yield cluster
        finally:
            stop(process, first=signal.SIGINT)  # SIGINT: PostgreSQL's "fast" shutdown
    finally:
        shutil.rmtree(root, ignore_errors=True)
