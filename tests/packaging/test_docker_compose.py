"""The image and deploy/compose.yaml, end to end: the image built from the Dockerfile (the wheel,
the locked dependencies, uid 10001), `docker compose up` of PostgreSQL, API, signers and the
background process in production mode, a withdrawal made and signed through the client SDK, and
the `custody_*` metrics on /metrics after it.

Building the image and starting the containers takes minutes, and needs a Docker daemon, the
compose plugin and the registries the images come from: it runs only with
CUSTODY_DOCKER_TESTS=1 (`make docker-test`), and is skipped with a notice otherwise. SoftHSM2
stands in for the vendor's module (tests/packaging/docker/).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.client import Client
from tests.support.api import withdrawal
from tests.support.metrics import scrape, value
from tests.support.tree import free_port

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "docker"
IMAGE = "custody:test"
UID = 10001
TOKEN = "custody-prod"
ALLOW_ALL = "version: 1\nrules:\n  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
READY_SECONDS = 180


def docker_unusable() -> str | None:
    """Why Docker cannot run this test here, or None."""
    if shutil.which("docker") is None:
        return "no docker command"
    for args, what in ((["info"], "the Docker daemon"), (["compose", "version"], "docker compose")):
        try:
            ran = subprocess.run(
                ["docker", *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{what}: {exc}"
        if ran.returncode != 0:
            return f"{what} does not answer: {(ran.stderr or ran.stdout).strip()[-200:]}"
    return None


pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("CUSTODY_DOCKER_TESTS") != "1",
        reason="NOTICE: the image and compose test needs CUSTODY_DOCKER_TESTS=1 "
        "(make docker-test): it builds an image and starts containers",
    ),
]


def _run(args: list[str], env: dict[str, str], timeout: float = 900) -> str:
    ran = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert ran.returncode == 0, f"{args}: exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    return ran.stdout


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    url: str

    def compose(self, *args: str, timeout: float = 900) -> str:
        files = ["-f", str(REPO / "deploy" / "compose.yaml"), "-f", str(HERE / "compose.test.yaml")]
        return _run(["docker", "compose", "-p", self.project, *files, *args], self.env, timeout)

    def custody(self, *args: str) -> Any:
        """`custody ARGS --json` in a one-off background container (the shared HSM token)."""
        out = self.compose(
            "run", "--rm", "--no-deps", "-T", "background", "custody", *args, "--json"
        )
        return json.loads(out.strip().splitlines()[-1])


def _secret(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(0o400)
    # Bind-mounted as they are: the image's user must own them (custody and libpq refuse
    # files that others may read).
    os.chown(path, UID, UID)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    why = docker_unusable()
    if why is not None:
        pytest.skip(f"NOTICE: Docker is not usable here ({why})")
    if os.geteuid() != 0:
        pytest.skip("NOTICE: the secrets must be owned by uid 10001: run as root")
    folder = tmp_path_factory.mktemp("compose-secrets")
    password = secrets.token_hex(16)
    pin = secrets.token_hex(8)
    _secret(folder, "db-password", password + "\n")
    _secret(folder, "db-pgpass", f"db:5432:custody:custody:{password}\n")
    _secret(folder, "hsm-pin", pin + "\n")
    port = free_port()
    env = {
        **os.environ,
        "CUSTODY_TEST_SECRETS": str(folder),
        "CUSTODY_TEST_DOCKER": str(HERE),
        "CUSTODY_TEST_PORT": str(port),
    }
    stack = Stack(f"custody-test-{secrets.token_hex(4)}", env, f"http://127.0.0.1:{port}")
    _run(["docker", "build", "-t", IMAGE, str(REPO)], env)
    try:
        stack.compose("build")
        stack.compose("up", "-d", "--wait", "db")
        # The token, once, in the shared volume; then `custody init` (migrations, keys, seal).
        stack.compose(
            "run", "--rm", "--no-deps", "-T", "background", "softhsm2-util", "--init-token",
            "--free", "--label", TOKEN, "--pin", pin, "--so-pin", secrets.token_hex(8),
        )  # fmt: skip
        stack.compose("run", "--rm", "--no-deps", "-T", "background", "custody", "init")
        stack.compose("up", "-d")
        deadline = time.monotonic() + READY_SECONDS
        while not _ready(stack.url):
            if time.monotonic() > deadline:
                pytest.fail(f"not ready in {READY_SECONDS} s\n{stack.compose('logs')}")
            time.sleep(1)
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", timeout=300)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_the_image_runs_the_wheel_as_uid_10001(stack: Stack) -> None:
    out = stack.compose(
        "run", "--rm", "--no-deps", "-T", "background", "python", "-c",
        "import os, custody; print(os.getuid(), os.getgid(), custody.__file__)",
    )  # fmt: skip
    uid, gid, package = out.split()[-3:]
    assert (uid, gid) == (str(UID), str(UID))
    # The installed wheel in the venv, not sources: no editable install.
    assert package.startswith("/opt/custody/lib/"), package
    assert "site-packages" in package


def test_compose_serves_a_signed_withdrawal_and_its_metrics(stack: Stack, tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # One one-off container: the public key and the policy are written inside it first.
    setup = (
        f"printf '%s' '{public.decode()}' > /tmp/desk.pem && "
        f"printf '%s' '{ALLOW_ALL}' > /tmp/allow.yaml && "
        "custody keys generate --label hot-key --algorithm secp256k1 --json >/dev/null && "
        "custody wallets create hot --chain ethereum --key hot-key --json >/dev/null && "
        "custody policy apply /tmp/allow.yaml --json >/dev/null && "
        "custody clients add desk --public-key /tmp/desk.pem --json"
    )
    out = stack.compose("run", "--rm", "--no-deps", "-T", "background", "sh", "-c", setup)
    client_id = json.loads(out.strip().splitlines()[-1])["id"]

    with Client(stack.url, client_id, private) as client:
        created = client.create(withdrawal("hot"), idempotency_key=str(uuid.uuid4()))
        signed = client.wait(created.id, timeout=60, until="signed")
    assert signed.status == "signed"
    assert signed.result is not None

    samples, _ = scrape(stack.url)
    assert value(samples, "custody_metrics_database_up") == 1
    assert value(samples, "custody_requests", type="withdrawal", status="signed") >= 1
