"""Configuration from the environment (and a `.env` file, if present)."""

import os
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="PostgreSQL >= 14. Unset: an embedded PostgreSQL in the data directory.")
    database_replica_urls: str = Field(
        default="", validation_alias=AliasChoices("DATABASE_REPLICA_URLS", "database_replica_urls"),
        description="Streaming replicas of DATABASE_URL, comma-separated: reads go to one that is up and within "
                    "CONFLICTKB_REPLICA_MAX_LAG_SECONDS, writes (and a read sending a newer write's "
                    "X-Consistency-Token) to the primary.")
    replica_max_lag_seconds: float = Field(
        default=10.0, gt=0, validation_alias=AliasChoices("CONFLICTKB_REPLICA_MAX_LAG_SECONDS", "replica_max_lag_seconds"),
        description="A replica further behind the primary than this gets no reads until it catches up.")
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis >= 6. Unset: an embedded redis-server in the data directory.")
    data_dir: Path = Field(
        default=Path("var"), validation_alias=AliasChoices("CONFLICTKB_DATA_DIR", "data_dir"))
    local_replicas: int = Field(
        default=0, ge=0, validation_alias=AliasChoices("CONFLICTKB_LOCAL_REPLICAS", "local_replicas"),
        description="With the embedded PostgreSQL (no DATABASE_URL): `serve` also starts this many hot-standby "
                    "streaming replicas of it in the data directory and reads from them.")
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("HOST", "host"))
    port: int = Field(default=8000, validation_alias=AliasChoices("PORT", "port"))
    secret_key: str | None = Field(
        default=None, validation_alias=AliasChoices("CONFLICTKB_SECRET_KEY", "secret_key"),
        description="Signs pagination cursors. Unset: a random key kept in the data directory.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", validation_alias=AliasChoices("CONFLICTKB_LOG_LEVEL", "log_level"))
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=AliasChoices("CONFLICTKB_LOG_FORMAT", "log_format"),
        description="text: a readable line per record; json: one JSON object per line (api/logs.py), "
                    "for a log collector.")
    workers: int = Field(
        default_factory=lambda: len(os.sched_getaffinity(0)), ge=1,
        validation_alias=AliasChoices("CONFLICTKB_WORKERS", "workers"),
        description="Worker processes `serve` runs (default: the machine's cores); they share the "
                    "embedded servers, the answer cache, the rate limits and /metrics.")
    shutdown_timeout_seconds: int = Field(
        default=30, ge=1, validation_alias=AliasChoices("CONFLICTKB_SHUTDOWN_TIMEOUT", "shutdown_timeout_seconds"),
        description="On SIGTERM or Ctrl-C, how long requests in flight may take to finish before "
                    "their connections are closed.")
    cors_origins: list[str] = Field(
        default=["*"], validation_alias=AliasChoices("CONFLICTKB_CORS_ORIGINS", "cors_origins"),
        description='Origins browsers may call the API from, as a JSON list; ["*"]: any (reads are public).')
    db_pool_size: int = Field(default=10, validation_alias=AliasChoices("CONFLICTKB_DB_POOL_SIZE", "db_pool_size"))
    max_concurrent_exports: int = Field(
        default=4, ge=1, validation_alias=AliasChoices("CONFLICTKB_MAX_CONCURRENT_EXPORTS", "max_concurrent_exports"),
        description="Exports streaming at once per process; each holds a database connection until it is done.")
    read_statement_timeout: float = Field(
        default=5.0, gt=0, validation_alias=AliasChoices("CONFLICTKB_READ_STATEMENT_TIMEOUT", "read_statement_timeout"),
        description="Seconds a statement of a read (REST or GraphQL) may run before PostgreSQL cancels it "
                    "(answered 503); every read under the cost limits (README, Limits) finishes well within it.")
    write_statement_timeout: float = Field(
        default=30.0, gt=0,
        validation_alias=AliasChoices("CONFLICTKB_WRITE_STATEMENT_TIMEOUT", "write_statement_timeout"),
        description="Seconds a statement of a write or an export may run (commands and imports always have 30).")
    seed_datasets: bool = Field(
        default=True, validation_alias=AliasChoices("CONFLICTKB_SEED_DATASETS", "seed_datasets"),
        description="Seeding also imports the dataset files of seeds/ (the UCDP Syria extract).")
    require_key_for_reads: bool = Field(
        default=False, validation_alias=AliasChoices("CONFLICTKB_REQUIRE_KEY_FOR_READS", "require_key_for_reads"),
        description="Reads (REST /v1 and GraphQL) need an API key of any role, as writes always do; "
                    "/healthz, /readyz and the OpenAPI docs stay open.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1, validation_alias=AliasChoices("CONFLICTKB_MAX_BODY_BYTES", "max_body_bytes"),
        description="Largest request body (REST writes) in bytes; a longer one is answered 413 unread.")
    max_graphql_body_bytes: int = Field(
        default=262_144, ge=1,
        validation_alias=AliasChoices("CONFLICTKB_MAX_GRAPHQL_BODY_BYTES", "max_graphql_body_bytes"),
        description="Largest /graphql request body in bytes (read before it is known whether it needs a key).")
    graphql_planner: bool = Field(
        default=True, validation_alias=AliasChoices("CONFLICTKB_GRAPHQL_PLANNER", "graphql_planner"),
        description="GraphQL queries are answered by SQL that builds their JSON (schema/planner.py); off: every "
                    "field by its resolver, as a way to compare or to rule the planner out.")
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("CONFLICTKB_BODY_TIMEOUT", "body_timeout_seconds"),
        description="Time a client has to send a request's whole body; slower is answered 408.")
    bench_routes: bool = Field(
        default=False, validation_alias=AliasChoices("CONFLICTKB_BENCH_ROUTES", "bench_routes"),
        description="Mount /bench/bytes, a bare route for bench/cache_throughput.py. Never in production.")
    redis_timeout_seconds: float = Field(
        default=0.1, gt=0, validation_alias=AliasChoices("CONFLICTKB_REDIS_TIMEOUT", "redis_timeout_seconds"),
        description="Socket timeout for Redis: a cache slower than this is skipped (answers come from PostgreSQL).")
    redis_retry_seconds: float = Field(
        default=2.0, gt=0, validation_alias=AliasChoices("CONFLICTKB_REDIS_RETRY", "redis_retry_seconds"),
        description="After a Redis error, how long requests skip Redis before one tries it again.")
    hsts_max_age_seconds: int = Field(
        default=63_072_000, ge=0, validation_alias=AliasChoices("CONFLICTKB_HSTS_MAX_AGE", "hsts_max_age_seconds"),
        description="Strict-Transport-Security max-age on answers to HTTPS requests (behind a proxy that sends "
                    "X-Forwarded-Proto); 0: no such header.")

    # Rate limits (api/ratelimit.py): units per window, by who calls; a request costs one
    # unit on arrival and more as its cost is known.
    rate_limits: bool = Field(
        default=True, validation_alias=AliasChoices("CONFLICTKB_RATE_LIMITS", "rate_limits"),
        description="Rate limits and quotas on; false: none, and no RateLimit headers.")
    rate_limit_window_seconds: int = Field(
        default=60, ge=1, validation_alias=AliasChoices("CONFLICTKB_RATE_LIMIT_WINDOW", "rate_limit_window_seconds"),
        description="The window the quotas are counted over, in seconds.")
    rate_limit_anonymous: int = Field(
        default=600, ge=1, validation_alias=AliasChoices("CONFLICTKB_RATE_LIMIT_ANONYMOUS", "rate_limit_anonymous"),
        description="Units per window for requests without a key, per client address.")
    rate_limit_reader: int = Field(
        default=3000, ge=1, validation_alias=AliasChoices("CONFLICTKB_RATE_LIMIT_READER", "rate_limit_reader"),
        description="Units per window per reader key (unless the key has its own: `apikey set-limit`).")
    rate_limit_editor: int = Field(
        default=3000, ge=1, validation_alias=AliasChoices("CONFLICTKB_RATE_LIMIT_EDITOR", "rate_limit_editor"))
    rate_limit_admin: int = Field(
        default=6000, ge=1, validation_alias=AliasChoices("CONFLICTKB_RATE_LIMIT_ADMIN", "rate_limit_admin"))
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default=[IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")],
        validation_alias=AliasChoices("CONFLICTKB_TRUSTED_PROXIES", "trusted_proxies"),
        description='Peers whose X-Forwarded-For names the client, as a JSON list of addresses or CIDRs '
                    '(["10.0.0.0/8"]); [] believes no one.')
    failed_auth_charge: int = Field(
        default=60, ge=0, validation_alias=AliasChoices("CONFLICTKB_FAILED_AUTH_CHARGE", "failed_auth_charge"),
        description="Units a failed authentication (unknown, revoked or malformed key) costs its client address.")
    failed_auth_lockout_after: int = Field(
        default=10, ge=1,
        validation_alias=AliasChoices("CONFLICTKB_FAILED_AUTH_LOCKOUT_AFTER", "failed_auth_lockout_after"),
        description="Failed authentications from one address within a window that lock it out.")
    failed_auth_lockout_seconds: int = Field(
        default=300, ge=1, validation_alias=AliasChoices("CONFLICTKB_FAILED_AUTH_LOCKOUT", "failed_auth_lockout_seconds"),
        description="How long a locked-out address is answered 429, whatever key it sends.")

    def replica_urls(self) -> list[str]:
        return [url.strip() for url in self.database_replica_urls.split(",") if url.strip()]

    @cached_property
    def cursor_key(self) -> bytes:
        """The key that signs cursors: configured, or made once per data directory."""
        if self.secret_key:
            return self.secret_key.encode()
        import secrets

        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()


def normalise_database_url(url: str) -> str:
    """Accept plain postgres:// URLs; the app talks to PostgreSQL through asyncpg."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url
