"""The profile summary (bench/profile.py): how py-spy's samples are sorted into steps and
packages. Stacks here are made up, in py-spy's raw format; no process is sampled."""

from __future__ import annotations

import dataclasses

from bench.profile import FRAMEWORK, package_of, parse, render

SITE = "/work/.venv/lib/python3.11/site-packages"
API_CREATE = (
    "<module> (<string>:1);Thread.run (threading.py:975);"
    "create_request (custody/api/requests.py:70);submit (custody/intake/pipeline.py:120);"
    "_decide_and_store (custody/intake/pipeline.py:300);"
    f"Session.execute ({SITE}/sqlalchemy/orm/session.py:2300) 30"
)
API_AUTH_INSIDE_SUBMIT_NAME = (
    "client (custody/api/deps.py:86);_authenticate (custody/api/deps.py:59);"
    "jwt_decode (jwt/api_jwt.py:10) 5"
)
API_LOOP = "BaseEventLoop._run_once (asyncio/base_events.py:1900) 10"


def test_samples_go_to_the_first_step_on_their_stack_and_to_the_innermost_package() -> None:
    profile = parse([API_CREATE, API_AUTH_INSIDE_SUBMIT_NAME, API_LOOP, "", "garbage"], "api")
    assert profile.samples == 45
    assert profile.by_step["create: decide and store (write lock held)"] == 30
    assert profile.by_step["authentication (token, client, nonce)"] == 5
    assert profile.by_step[FRAMEWORK["api"]] == 10
    assert profile.by_package["SQLAlchemy"] == 30
    assert profile.by_package["PyJWT, cryptography"] == 5


def test_a_sample_in_decide_and_store_is_not_counted_as_the_rest_of_intake() -> None:
    """`submit` is on every create's stack: the narrower step listed first wins."""
    profile = parse([API_CREATE], "api")
    assert profile.by_step.get("create: the rest of intake", 0) == 0


def test_packages_are_named_from_any_path_py_spy_gives() -> None:
    assert package_of("custody/signing/pipeline.py") == "custody"
    assert package_of("/work/main/custody/api/requests.py") == "custody"
    assert package_of(f"{SITE}/sqlalchemy/engine/base.py") == "SQLAlchemy"
    assert package_of("sqlalchemy/engine/base.py") == "SQLAlchemy"
    assert package_of("PyKCS11/__init__.py").startswith("PyKCS11")
    assert package_of("threading.py").startswith("the standard library")
    assert package_of("/usr/lib/python3.11/threading.py").startswith("the standard library")
    assert package_of("<frozen importlib._bootstrap>").startswith("Python itself")


def test_the_summary_gives_milliseconds_per_request_for_each_step() -> None:
    facts = {
        "date": "2026-12-02 01:00 UTC",
        "commit": "abc1234",
        "cpu": "Test CPU",
        "cores": "2",
        "load": "0.1, 0.2, 0.3",
        "database": "SQLite",
        "concurrency": "16",
        "signed": "20.0",
    }
    # The processes used 180 ms of CPU over 10 requests, 18 ms each; the samples split it.
    sampled = parse([API_CREATE, API_AUTH_INSIDE_SUBMIT_NAME, API_LOOP], "api")
    text = render(facts, [dataclasses.replace(sampled, cpu_seconds=0.18)], 10)
    assert "18.0 ms of CPU per signed request (45 samples holding the GIL)" in text
    assert "| create: decide and store (write lock held) | 12.00 | 67% |" in text
    assert "| SQLAlchemy | 12.00 | 67% |" in text
