"""Settings come, in order of precedence, from `CUSTODY_*` environment variables, then
`CUSTODY_HOME/custody.toml`, then defaults. Keys in the TOML file are the same names as the
environment variables without the prefix, lower-case, so one table documents both.

PINs never come from the file (invariant 9): a PIN-like key in it is refused, not ignored, so an
operator who put one there learns at once that it must move to CUSTODY_HSM_PIN(_FILE).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from custody.errors import CustodyError

CONFIG_FILE_NAME = "custody.toml"
DEV_TOKEN_LABEL = "custody-dev"  # noqa: S105  (a token label, not a secret)
# Words of a key name that say it holds a PIN or password (invariant 9). The config file is read
# by every process, copied into backups and tickets, and no tool treats it as secret.
_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_SECRET_WORDS = re.compile(r"[a-z0-9]*pins?|pass(word|wd|phrase)|secret")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    TEXT = "text"  # one line a person reads in a terminal
    JSON = "json"  # one JSON object a line, for a log collector (Loki, Elasticsearch, …)


@dataclass(frozen=True)
class RelyingParty:
    """Whom a passkey answers: the WebAuthn relying party id (a host) and the exact origin people
    use. An assertion made for any other site or origin does not verify."""

    id: str
    origin: str


class SettingsInvalid(CustodyError):
    status = 500
    title = "Configuration invalid"
    slug = "configuration-invalid"


def resolve_home(home: Path | str | None = None) -> Path:
    """The installation folder: an explicit argument, else `CUSTODY_HOME`, else `./var`."""
    chosen = home if home is not None else os.environ.get("CUSTODY_HOME", "var")
    return Path(chosen).expanduser().resolve()


class TokenSettings(BaseModel):
    """One more token of the HSM (`[tokens.NAME]` in custody.toml): a slot of the same PKCS#11
    module, found by its label, with a PIN of its own from a file or an environment variable
    (never from the file itself, invariant 9)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str | None = Field(default=None, min_length=1, max_length=32)  # default: NAME
    pin_file: Path | None = None  # relative to CUSTODY_HOME
    # The NAME of a variable, upper case as variables are: a PIN put here by mistake is more
    # likely refused than repeated in "set X to its PIN" messages.
    pin_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")

    @model_validator(mode="after")
    def _one_pin_source(self) -> TokenSettings:
        if (self.pin_file is None) == (self.pin_env is None):
            raise ValueError("each [tokens.NAME] needs exactly one of pin_file and pin_env")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CUSTODY_", extra="forbid", frozen=True, case_sensitive=False
    )

    home: Path
    environment: Environment = Environment.DEVELOPMENT
    # How every process of `custody serve` and `custody worker` writes its log lines to stderr
    # (custody.processes.logs); each line of an HTTP call carries its X-Request-Id either way.
    log_format: LogFormat = LogFormat.TEXT
    # OpenTelemetry tracing (custody.tracing, docs/metrics.md): on or off; unset, it is on when
    # the standard variables ask for it (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT …).
    # Needs the `otel` extra: `pip install 'custody[otel]'`.
    tracing: bool | None = None
    database_url: str | None = None
    # How long custody waits on its database (custody.store.database, docs/reliability.md).
    # libpq waits at least 2 s for a connection, whatever it is told.
    database_connect_timeout_seconds: int = Field(default=5, ge=2, le=300)
    database_statement_timeout_seconds: float = Field(default=30.0, ge=0, le=86_400)  # 0: none
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # PostgreSQL: the most connections one `custody serve` or `custody worker` opens, shared out
    # among its processes (keep it below the server's max_connections, less what else connects:
    # PostgreSQL refuses connections past that, to custody and everyone else).
    database_connections: int = Field(default=60, ge=4, le=10_000)
    # Set by `custody serve` and `custody worker` for each of their processes: its share of
    # `database_connections`. Unset (a single process: the CLI), 30.
    database_process_connections: int | None = Field(default=None, ge=2, le=10_000)
    # A database call this old makes custody check that the server still answers; a server that
    # does not answer that check within this time either is cut off and answered 503 until it does.
    database_liveness_seconds: float = Field(default=2.0, ge=0.5, le=60)
    hsm_module: str | None = None
    hsm_token: str | None = None
    hsm_pin: SecretStr | None = None
    hsm_pin_file: Path | None = None
    # The security officer's PIN, needed only by `custody ceremony backup` (it marks the
    # ceremony's key-encryption key trusted). Never in the TOML file, like the user PIN.
    hsm_so_pin: SecretStr | None = None
    hsm_so_pin_file: Path | None = None
    # Tokens besides the main one (`custody keys generate --token NAME`), by name; all are slots
    # of the same PKCS#11 module (CUSTODY_HSM_MODULE, or the development SoftHSM).
    tokens: dict[str, TokenSettings] = Field(default_factory=dict)
    ledger_key_label: str = "ledger"
    # Signs every state of the configuration the signer trusts (custody.seals).
    root_key_label: str = "installation-root"
    # Signs the calls of withdrawals people start in the approver app (custody.clients.tokens).
    app_key_label: str = "approver-app"
    ledger_origin: str = "custody.local/ledger"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # `custody serve`: a client must send each whole request (head and body) within this many
    # seconds of the server starting to wait for it, else it is disconnected (slowloris).
    http_request_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=300)  # idle between requests
    http_max_connections: int = Field(default=1000, ge=1)  # more are answered 503
    # `custody serve`: the longest a stop (SIGTERM, Ctrl-C) may take. Calls still running after
    # half of it are cancelled; whatever still runs at the end is abandoned and the process exits.
    shutdown_timeout_seconds: float = Field(default=10.0, ge=1, le=600)
    jwt_max_lifetime_seconds: int = Field(default=60, ge=1, le=60)
    jwt_clock_skew_seconds: int = Field(default=30, ge=0, le=120)
    worker_poll_seconds: float = Field(default=0.2, gt=0)
    # A long poll (`GET /v1/requests/{id}?wait=S`) is woken by every status change made on this
    # host; it also reads the request this often, for changes made by processes on other hosts.
    long_poll_recheck_seconds: float = Field(default=1.0, gt=0, le=60)
    signing_lease_seconds: int = Field(default=30, ge=5)
    # The most one transaction may pay in fees (gas x max_fee_per_gas), in wei: fees are paid
    # from the wallet whatever the policy says about the amount. Default 0.05 ETH.
    max_tx_fee_wei: int = Field(default=50_000_000_000_000_000, ge=0)
    # Connected chains (custody.broadcast): how long a node may take to answer one call, and
    # how often the broadcaster sends what was signed and follows receipts.
    node_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    broadcast_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    signing_batch_size: int = Field(default=32, ge=1, le=1000)
    # An HSM that fails is tried again after a backoff that doubles up to this many seconds
    # (with jitter); requests wait meanwhile. Signers also look at the HSM this often when idle,
    # so `/readyz` and the request views show an outage, and its end, within seconds.
    hsm_retry_max_seconds: float = Field(default=10.0, gt=0, le=600)
    hsm_check_seconds: float = Field(default=3.0, gt=0, le=10)
    # Whether `custody serve` runs signer and background processes beside its API processes
    # (`--worker/--no-worker`); off when `custody worker` runs them elsewhere.
    worker_in_process: bool = True
    # The processes `custody serve` and `custody worker` supervise (custody.processes): API
    # processes sharing one listening socket (`--workers`), signer processes (`--signers`,
    # `custody worker --processes`); one background process besides runs the checkpointer and
    # the webhook runner. Unset: sized to the cores and the database (custody.processes.sizing).
    api_processes: int | None = Field(default=None, ge=1, le=64)
    signer_processes: int | None = Field(default=None, ge=1, le=64)
    # A child that died is restarted after a delay doubling from 0.5 s per quick death in a row,
    # with jitter, up to this.
    restart_backoff_max_seconds: float = Field(default=30.0, ge=1, le=3600)
    checkpoint_interval_seconds: float = Field(default=2.0, ge=0)
    webhook_poll_seconds: float = Field(default=1.0, ge=0)
    webhook_max_attempts: int = Field(default=12, ge=1, le=100)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The approver web app: its origin (WebAuthn binds passkeys to it), session length, cookies.
    public_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^/?#]+$")
    rp_id: str | None = None  # WebAuthn relying party id; default: public_url's host
    session_minutes: int = Field(default=30, ge=1, le=24 * 60)
    cookie_secure: bool | None = None  # default: on, except in development over plain http
    # Rate limits (custody/http/ratelimit.py): token buckets of `…_per_second` tokens a second
    # and `…_burst` tokens at most, held in each server process's memory. `address` counts every
    # call to the API and the approver app per source address; `sign_in` the approver app's
    # sign-in and enrolment calls per source address; `client` each API client once its token
    # verified; `approver` each signed-in approver. Health endpoints are never limited.
    rate_limits: bool = True
    rate_limit_address_per_second: float = Field(default=100.0, gt=0)
    rate_limit_address_burst: int = Field(default=400, ge=1)
    rate_limit_sign_in_per_second: float = Field(default=1.0, gt=0)
    rate_limit_sign_in_burst: int = Field(default=60, ge=1)
    rate_limit_client_per_second: float = Field(default=50.0, gt=0)
    rate_limit_client_burst: int = Field(default=200, ge=1)
    rate_limit_approver_per_second: float = Field(default=10.0, gt=0)
    rate_limit_approver_burst: int = Field(default=100, ge=1)
    # Buckets tracked per kind at most (the least recently used goes beyond), and the prefix
    # length IPv6 sources are grouped by (one host commonly holds a whole /64).
    rate_limit_max_keys: int = Field(default=50_000, ge=100)
    rate_limit_ipv6_prefix: int = Field(default=64, ge=32, le=128)
    # Proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated in the
    # environment). Empty by default: the source address is the TCP peer.
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """`10.0.0.2, 10.1.0.0/16` or a JSON list in the environment; a list in the TOML file."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("tokens")
    @classmethod
    def _token_names(cls, value: dict[str, TokenSettings]) -> dict[str, TokenSettings]:
        for name in value:
            if not _TOKEN_NAME.fullmatch(name):
                raise ValueError(f"token name {name!r}: use 1-32 characters from A-Z a-z 0-9 . _ -")
        return value

    @model_validator(mode="after")
    def _token_labels_are_distinct(self) -> Settings:
        labels = [self.main_token_label, *self.extra_token_labels.values()]
        doubles = sorted({label for label in labels if labels.count(label) > 1})
        if doubles:
            raise ValueError(f"several tokens are labelled {doubles[0]!r}: each needs its own")
        return self

    @model_validator(mode="after")
    def _production_needs_a_real_hsm(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            missing = [
                name
                for name, value in (
                    ("CUSTODY_HSM_MODULE", self.hsm_module),
                    ("CUSTODY_HSM_TOKEN", self.hsm_token),
                )
                if not value
            ]
            if self.hsm_pin is None and self.hsm_pin_file is None:
                missing.append("CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE")
            if missing:
                raise ValueError(
                    "production needs a real HSM and never uses the development token; set "
                    + ", ".join(missing)
                )
            if not self.database_url:
                raise ValueError("production needs CUSTODY_DATABASE_URL (PostgreSQL)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file lives in the home folder, so the home must be known first.
        init_kwargs: dict[str, object] = getattr(init_settings, "init_kwargs", {})
        home = resolve_home(init_kwargs.get("home"))  # type: ignore[arg-type]
        toml = _SecretFreeToml(settings_cls, toml_file=home / CONFIG_FILE_NAME)
        return (init_settings, env_settings, toml)

    # -- derived locations -------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'custody.db'}"

    @property
    def web_rp_id(self) -> str:
        return self.rp_id or (urlsplit(self.public_url).hostname or "localhost")

    @property
    def relying_party(self) -> RelyingParty:
        return RelyingParty(self.web_rp_id, self.public_url)

    @property
    def web_cookie_secure(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        plain_dev = self.environment is Environment.DEVELOPMENT and self.public_url.startswith(
            "http://"
        )
        return not plain_dev

    @property
    def hsm_dir(self) -> Path:
        return self.home / "hsm"

    @property
    def main_token_label(self) -> str:
        return self.hsm_token or DEV_TOKEN_LABEL

    @property
    def extra_token_labels(self) -> dict[str, str]:
        """The extra tokens' labels by name (a token's label defaults to its name)."""
        return {name: token.label or name for name, token in self.tokens.items()}

    @property
    def uses_dev_token(self) -> bool:
        return self.hsm_module is None

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE_NAME


class _SecretFreeToml(TomlConfigSettingsSource):
    """`custody.toml`, refused whole when it holds a PIN-like key, before any value is used."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path) -> None:
        super().__init__(settings_cls, toml_file=toml_file)
        secret = next(iter(secret_keys(self.toml_data)), None)
        if secret is not None:
            raise SettingsInvalid(
                f"{toml_file}: `{secret}` looks like a PIN or password, and those never go in "
                "a config file: remove it and set CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE (for "
                "[tokens.NAME]: pin_file or pin_env)"
            )


def secret_keys(table: dict[str, object], prefix: str = "") -> list[str]:
    """Dotted names of the keys in a TOML table (and its sub-tables) that would hold a secret.

    A key ending in `_file` names a file, not a secret (`hsm_pin_file` is how a PIN is given),
    and one ending in `_env` an environment variable (`[tokens.NAME] pin_env`).
    """
    found = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        words = re.split(r"[^a-z0-9]+", key.lower())
        names_a_place = words[-1] in ("file", "env")
        if not names_a_place and any(_SECRET_WORDS.fullmatch(word) for word in words):
            found.append(name)
        if isinstance(value, dict):
            found.extend(secret_keys(value, f"{name}."))
    return found


def load_settings(home: Path | str | None = None, **overrides: object) -> Settings:
    """Build settings for `home` (or `CUSTODY_HOME`), failing with one clear line."""
    try:
        return Settings(home=resolve_home(home), **overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SettingsInvalid(f"configuration: {_first_line(exc)}") from None


def _first_line(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)
    return str(exc).splitlines()[0]
