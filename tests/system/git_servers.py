"""Real git servers on 127.0.0.1 for transport tests: smart HTTP (`git http-backend` behind a
small HTTP server) and ssh (`sshd` with a throwaway host key, client key and config).

Each is a context manager that yields what a clone needs to reach it, and stops what it
started (only that) when the block ends. A missing `git http-backend` or `sshd` fails the
test loudly: `.ci/run` installs them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import free_port, wait_listening

__all__ = ["serve_http_backend", "serve_sshd"]


class _GitCgi(BaseHTTPRequestHandler):
    """Runs `git http-backend` as a CGI program for every request (RFC 3875 variables)."""

    project_root = ""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self._cgi()

    def do_POST(self) -> None:  # noqa: N802
        self._cgi()

    def log_message(self, *_args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.project_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            # An authenticated user may push (http.receivepack's default).
            "REMOTE_USER": "grite",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def serve_http_backend(project_root: Path) -> Iterator[int]:
    """Smart HTTP for the repositories under `project_root`, pushes allowed; yields the port."""
    assert shutil.which("git"), "git is needed (see .ci/run)"
    handler = type("Handler", (_GitCgi,), {"project_root": str(project_root)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def serve_sshd(base: Path) -> Iterator[tuple[int, str]]:
    """An sshd on 127.0.0.1 accepting one throwaway key for the current user.

    Yields:
        (port, the ssh command for `core.sshCommand`, which uses that key).
    """
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    assert os.path.exists(sshd), "sshd is needed: apt-get install openssh-server (see .ci/run)"
    base.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True
        )
    authorized = base / "authorized_keys"
    authorized.write_text((base / "client_key.pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {base / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(base / "sshd.log", "wb"),  # noqa: SIM115 (closed with the process)
        start_new_session=True,
    )
    try:
        wait_listening(port, proc, f"sshd (see {base / 'sshd.log'})")
        command = (
            f"ssh -i {base / 'client_key'} -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
        )
        yield port, command
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
