"""SQLAlchemy Core tables of the knowledge base, as the migrations build them.

The migrations (db/migrations) are the source of truth and also hold the triggers and
vocabulary rows; these definitions are what the query layer composes statements from.
tests/test_migrations.py checks the two agree.
"""

from sqlalchemy import (
    ARRAY,
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, REAL, TIMESTAMP, TSVECTOR, UUID
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.types import UserDefinedType

metadata = MetaData()


class Point(UserDefinedType):
    """PostgreSQL's core `point` (x = longitude, y = latitude here)."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "POINT"


class XID8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id (`pg_current_xact_id()`)."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "XID8"


# Reflection (Alembic's comparisons) then knows the types too.
postgresql_base.ischema_names["point"] = Point
postgresql_base.ischema_names["xid8"] = XID8


def _id() -> Column:
    return Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _timestamps() -> list[Column]:
    return [
        Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    ]


def _vocabulary(name: str, key: str, *extra: Column) -> Table:
    return Table(name, metadata, Column(key, Text, primary_key=True), *extra,
                 Column("description", Text, nullable=False))


event_types = _vocabulary("event_types", "name")
sub_event_types = _vocabulary("sub_event_types", "name",
                              Column("event_type", Text, ForeignKey("event_types.name"), nullable=False))
date_precisions = _vocabulary("date_precisions", "code", Column("rank", SmallInteger, nullable=False))
geo_precisions = _vocabulary("geo_precisions", "code", Column("rank", SmallInteger, nullable=False))
place_kinds = _vocabulary("place_kinds", "code", Column("level", SmallInteger, nullable=False))
actor_kinds = _vocabulary("actor_kinds", "code", Column("independent", Boolean, nullable=False))
predicates = _vocabulary("predicates", "code", Column("value_kind", Text, nullable=False))
stances = _vocabulary("stances", "code")
event_roles = _vocabulary("event_roles", "code")
datasets = Table(
    "datasets", metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("url", Text),
    Column("licence", Text),
)

places = Table(
    "places", metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("kind", Text, ForeignKey("place_kinds.code"), nullable=False),
    Column("parent_id", UUID(as_uuid=True), ForeignKey("places.id")),
    Column("iso2", CHAR(2)),
    Column("iso3", CHAR(3)),
    Column("latitude", Double),
    Column("longitude", Double),
    *_timestamps(),
)

actors = Table(
    "actors", metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("kind", Text, ForeignKey("actor_kinds.code"), nullable=False),
    Column("parent_id", UUID(as_uuid=True), ForeignKey("actors.id")),
    Column("description", Text),
    *_timestamps(),
)


def _names(owner: str) -> Table:
    return Table(
        f"{owner}_names", metadata,
        Column(f"{owner}_id", UUID(as_uuid=True), ForeignKey(f"{owner}s.id", ondelete="CASCADE"), primary_key=True),
        Column("name", Text, nullable=False),
        Column("name_norm", Text, primary_key=True),
    )


def _lineage(owner: str) -> Table:
    return Table(
        f"{owner}_lineage", metadata,
        Column("ancestor_id", UUID(as_uuid=True), ForeignKey(f"{owner}s.id", ondelete="CASCADE"), primary_key=True),
        Column("descendant_id", UUID(as_uuid=True), ForeignKey(f"{owner}s.id", ondelete="CASCADE"), primary_key=True),
        Column("depth", SmallInteger, nullable=False),
    )


def _external_ids(owner: str) -> Table:
    return Table(
        f"{owner}_external_ids", metadata,
        Column("dataset", Text, ForeignKey("datasets.code"), primary_key=True),
        Column("external_id", Text, primary_key=True),
        Column(f"{owner}_id", UUID(as_uuid=True), ForeignKey(f"{owner}s.id", ondelete="CASCADE"), nullable=False),
    )


place_names = _names("place")
place_lineage = _lineage("place")
actor_names = _names("actor")
actor_lineage = _lineage("actor")

actor_memberships = Table(
    "actor_memberships", metadata,
    _id(),
    Column("member_id", UUID(as_uuid=True), ForeignKey("actors.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", UUID(as_uuid=True), ForeignKey("actors.id", ondelete="CASCADE"), nullable=False),
    Column("relation", Text, nullable=False, server_default="member"),
    Column("valid_from", Date),
    Column("valid_to", Date),
)

documents = Table(
    "documents", metadata,
    _id(),
    Column("publisher", Text),
    Column("publisher_actor_id", UUID(as_uuid=True), ForeignKey("actors.id")),
    Column("title", Text),
    Column("url", Text),
    Column("published_at", Date),
    Column("language", Text),
    Column("excerpt", Text),
    *_timestamps(),
)

events = Table(
    "events", metadata,
    _id(),
    Column("event_type", Text, ForeignKey("event_types.name"), nullable=False),
    Column("sub_event_type", Text, nullable=False),
    Column("type_of_violence", SmallInteger),
    Column("date_start", Date, nullable=False),
    Column("date_end", Date, nullable=False),
    Column("date_precision", Text, ForeignKey("date_precisions.code"), nullable=False),
    Column("place_id", UUID(as_uuid=True), ForeignKey("places.id"), nullable=False),
    Column("geo_precision", Text, ForeignKey("geo_precisions.code"), nullable=False),
    Column("latitude", Double),
    Column("longitude", Double),
    Column("summary", Text),
    Column("fatalities_low", Integer),
    Column("fatalities_best", Integer),
    Column("fatalities_high", Integer),
    Column("civilian_fatalities_low", Integer),
    Column("civilian_fatalities_best", Integer),
    Column("civilian_fatalities_high", Integer),
    Column("fatality_claim_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    *_timestamps(),
    # Kept by triggers (migration 0002) and db/derive.py, never written by the application.
    Column("country_id", UUID(as_uuid=True), ForeignKey("places.id")),
    Column("admin1_id", UUID(as_uuid=True), ForeignKey("places.id")),
    Column("admin2_id", UUID(as_uuid=True), ForeignKey("places.id")),
    Column("location", Point),
    Column("search_vector", TSVECTOR),
    # The sub-event type must belong to the event type.
    ForeignKeyConstraint(["event_type", "sub_event_type"], ["sub_event_types.event_type", "sub_event_types.name"]),
)

# The distinct points events are located at (migration 0004): "nearest first" reads
# points by distance, then each point's events.
event_points = Table(
    "event_points", metadata,
    Column("longitude", Double, nullable=False),
    Column("latitude", Double, nullable=False),
    Column("location", Point, nullable=False),
)

event_actors = Table(
    "event_actors", metadata,
    Column("event_id", UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("actor_id", UUID(as_uuid=True), ForeignKey("actors.id"), primary_key=True),
    Column("role", Text, ForeignKey("event_roles.code"), primary_key=True),
    Column("status", Text),
    Column("status_claim_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    # copies of the event's dates, kept by triggers (migration 0003): an actor's events by date
    Column("date_start", Date, nullable=False),
    Column("date_end", Date, nullable=False),
    # the dataset whose import listed the role (migration 0011); null for the seed's, the API's, derived ones
    Column("dataset", Text, ForeignKey("datasets.code")),
)

claims = Table(
    "claims", metadata,
    _id(),
    Column("event_id", UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("claimant_id", UUID(as_uuid=True), ForeignKey("actors.id"), nullable=False),
    Column("via_id", UUID(as_uuid=True), ForeignKey("actors.id")),
    Column("speaker", Text),
    Column("document_id", UUID(as_uuid=True), ForeignKey("documents.id")),
    Column("predicate", Text, ForeignKey("predicates.code"), nullable=False),
    Column("stance", Text, ForeignKey("stances.code"), nullable=False),
    Column("value_low", Integer),
    Column("value_best", Integer),
    Column("value_high", Integer),
    Column("value_actor_id", UUID(as_uuid=True), ForeignKey("actors.id")),
    Column("value_place_id", UUID(as_uuid=True), ForeignKey("places.id")),
    Column("value_date", Date),
    Column("value_text", Text),
    Column("quote", Text),
    *_timestamps(),
    # the dataset whose import made the claim (migration 0009); null for the seed's and the API's
    Column("dataset", Text, ForeignKey("datasets.code")),
)

event_external_ids = _external_ids("event")
actor_external_ids = _external_ids("actor")
place_external_ids = _external_ids("place")


# Pairs of events from different sources that may be one happening (migration 0010, db/linking.py).
event_matches = Table(
    "event_matches", metadata,
    Column("event_id", UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("other_id", UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("score", REAL, CheckConstraint("score BETWEEN 0 AND 1"), nullable=False),
    Column("time_score", REAL, nullable=False),
    Column("place_score", REAL, nullable=False),
    Column("type_score", REAL, nullable=False),
    Column("actor_score", REAL),
    Column("fatality_score", REAL),
    Column("days_apart", Integer, nullable=False),
    Column("distance_km", REAL),
    Column("linked", Boolean, nullable=False),
    # (migration 0015) evidence from claims, and the one-to-one selection's outcome
    Column("claimant_score", REAL),
    Column("text_score", REAL),
    Column("status", Text, CheckConstraint("status IN ('linked', 'contender', 'candidate')",
                                           name="ck_event_matches_status"),
           nullable=False, server_default="candidate"),
    CheckConstraint("event_id < other_id"),
    CheckConstraint("linked = (status = 'linked')", name="ck_event_matches_linked"),
    Index("ix_event_matches_other", "other_id"),
)

# An editor's verdict on a pair (migration 0015), one row per event of the pair.
event_links = Table(
    "event_links", metadata,
    Column("event_id", UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("other_id", UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("verdict", Text, CheckConstraint("verdict IN ('confirmed', 'rejected')", name="ck_event_links_verdict"),
           nullable=False),
    Column("note", Text),
    Column("decided_by", Text, nullable=False),
    Column("decided_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("event_id <> other_id", name="ck_event_links_pair"),
    Index("ix_event_links_other", "other_id"),
)

# How one dataset names an actor another names otherwise, both directions, by
# normalised name (migration 0016, db/crosswalk.py).
actor_crosswalk = Table(
    "actor_crosswalk", metadata,
    Column("name_norm", Text, primary_key=True),
    Column("other_name_norm", Text, primary_key=True),
    Column("note", Text),
    CheckConstraint("name_norm <> other_name_norm", name="ck_actor_crosswalk_pair"),
)

# The happening of each record linked to another (migration 0015); one linked to none
# is a happening of its own under its own id.
happening_members = Table(
    "happening_members", metadata,
    Column("event_id", UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("happening_id", UUID(as_uuid=True), nullable=False),
    Index("ix_happening_members_happening", "happening_id"),
)


# Dataset files imported in full, by content (migration 0009).
dataset_files = Table(
    "dataset_files", metadata,
    Column("sha256", Text, primary_key=True),
    Column("dataset", Text, ForeignKey("datasets.code"), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("imported_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("summary", Text, nullable=False),
)


# Keys for writes (migration 0012): only a key's SHA-256 is kept.
api_keys = Table(
    "api_keys", metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("name", Text, CheckConstraint("name <> ''"), nullable=False),
    Column("role", Text, CheckConstraint("role IN ('reader', 'editor', 'admin')"), nullable=False),
    Column("key_sha256", LargeBinary, nullable=False, unique=True),
    Column("prefix", Text, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", TIMESTAMP(timezone=True)),
    Column("revoked_at", TIMESTAMP(timezone=True)),
    # units per rate-limit window (migration 0014); NULL: the role's quota
    Column("rate_limit", Integer, CheckConstraint("rate_limit > 0", name="ck_api_keys_rate_limit_positive")),
)


# Moved by every write in its transaction (migration 0005); cached answers are keyed by it.
data_generation = Table(
    "data_generation", metadata,
    Column("only_row", Boolean, primary_key=True, server_default=text("true")),
    Column("epoch", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),
    Column("generation", BigInteger, nullable=False),
    Column("rollup_stale", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint("only_row"),
)


# Events per start and end month, area and type, kept by a trigger on events
# (migration 0006); stats and totals filtered by those alone sum it.
event_month_counts = Table(
    "event_month_counts", metadata,
    Column("level", SmallInteger, CheckConstraint("level IN (0, 1, 2)"), nullable=False),
    Column("start_month", Date, nullable=False),
    Column("end_month", Date, nullable=False),
    Column("country_id", UUID(as_uuid=True)),
    Column("admin1_id", UUID(as_uuid=True)),
    Column("admin2_id", UUID(as_uuid=True)),
    Column("event_type", Text, nullable=False),
    Column("sub_event_type", Text, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("fatalities_low", BigInteger, nullable=False),
    Column("fatalities_best", BigInteger, nullable=False),
    Column("fatalities_high", BigInteger, nullable=False),
    Column("civilian_fatalities", BigInteger, nullable=False),
    Column("open_high_events", Integer, nullable=False),
    UniqueConstraint("level", "start_month", "end_month", "country_id", "admin1_id", "admin2_id", "event_type",
                     "sub_event_type", name="uq_event_month_counts", postgresql_nulls_not_distinct=True),
    Index("ix_event_month_counts_sub_type", "level", "sub_event_type", "start_month"),
    Index("ix_event_month_counts_admin1", "level", "admin1_id", "start_month"),
    Index("ix_event_month_counts_admin2", "level", "admin2_id", "start_month"),
    Index("ix_event_month_counts_country", "level", "country_id", "start_month"),
)


# The history of the knowledge base's tables, one change set per statement and table,
# the rows as they were before it (migration 0018), and the change feed (0013).
change_sets = Table(
    "change_sets", metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("txid", XID8, server_default=text("pg_current_xact_id()")),
    Column("generation", BigInteger),
    Column("at", TIMESTAMP(timezone=True), nullable=False),
    Column("who", Text, nullable=False),
    Column("table_name", Text, nullable=False),
    Column("op", Text, CheckConstraint("op IN ('created', 'updated', 'deleted')"), nullable=False),
    Column("keys", ARRAY(Text), nullable=False),
    Column("event_ids", ARRAY(UUID(as_uuid=True))),
    Column("events_after", ARRAY(UUID(as_uuid=True))),
    Column("befores", ARRAY(JSONB)),
    Column("events_touched", ARRAY(UUID(as_uuid=True))),
)

changes = Table(
    "changes", metadata,
    # (the key: a feed entry is read by its transaction's generation, then its seq)
    Column("txid", XID8, nullable=False, server_default=text("pg_current_xact_id()"), primary_key=True),
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("record_type", Text, CheckConstraint("record_type IN ('event', 'claim', 'actor', 'place', 'document')"),
           nullable=False),
    Column("record_id", UUID(as_uuid=True), nullable=False),
    Column("op", Text, CheckConstraint("op IN ('created', 'updated', 'deleted', 'merged')"), nullable=False),
    Column("merged_into", UUID(as_uuid=True)),
    UniqueConstraint("txid", "record_type", "record_id", name="uq_changes_per_transaction"),
    Index("ix_changes_gone", "record_type", "record_id", "seq", postgresql_where=text("op IN ('deleted', 'merged')")),
)

# The indexes a bulk load dropped, until they are built again (migration 0019, db/bulk.py).
indexes_to_rebuild = Table(
    "indexes_to_rebuild", metadata,
    Column("name", Text, primary_key=True),
    Column("definition", Text, nullable=False),
)

# Each writing transaction's data generation, its place in commit order (migration 0018).
write_generations = Table(
    "write_generations", metadata,
    Column("txid", XID8, primary_key=True),
    Column("generation", BigInteger, nullable=False),
    Index("ix_write_generations_order", "generation", "txid"),
)

# A POST's answer under its Idempotency-Key, per API key (migration 0013).
idempotent_requests = Table(
    "idempotent_requests", metadata,
    Column("api_key_id", UUID(as_uuid=True), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_sha256", LargeBinary, nullable=False),
    Column("status", SmallInteger),
    Column("location", Text),
    Column("body", LargeBinary),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_idempotent_requests_created", "created_at"),
)
