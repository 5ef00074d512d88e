"""Configuration from the environment (and a `.env` file, if present)."""

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="PostgreSQL >= 14. Unset: an embedded PostgreSQL in the data directory.")
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis >= 6. Unset: an embedded redis-server in the data directory.")
    data_dir: Path = Field(
        default=Path("var"), validation_alias=AliasChoices("CONFLICTKB_DATA_DIR", "data_dir"))
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("HOST", "host"))
    port: int = Field(default=8000, validation_alias=AliasChoices("PORT", "port"))
    secret_key: str | None = Field(
        default=None, validation_alias=AliasChoices("CONFLICTKB_SECRET_KEY", "secret_key"),
        description="Signs pagination cursors. Unset: a random key kept in the data directory.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", validation_alias=AliasChoices("CONFLICTKB_LOG_LEVEL", "log_level"))
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
    bench_routes: bool = Field(
        default=False, validation_alias=AliasChoices("CONFLICTKB_BENCH_ROUTES", "bench_routes"),
        description="Mount /bench/bytes, a bare route for bench/cache_throughput.py. Never in production.")
    redis_timeout_seconds: float = Field(
        default=0.1, gt=0, validation_alias=AliasChoices("CONFLICTKB_REDIS_TIMEOUT", "redis_timeout_seconds"),
        description="Socket timeout for Redis: a cache slower than this is skipped (answers come from PostgreSQL).")
    redis_retry_seconds: float = Field(
        default=2.0, gt=0, validation_alias=AliasChoices("CONFLICTKB_REDIS_RETRY", "redis_retry_seconds"),
        description="After a Redis error, how long requests skip Redis before one tries it again.")

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
