"""The knowledge base: vocabularies, places, actors, documents, events, claims.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Vocabularies (ACLED taxonomy, precisions, kinds, predicates, stances) are rows, not
enums, so they are data an API can list and foreign keys validate every write.
Hierarchies (places, actor parents) keep a closure table maintained by triggers, so
"everything inside Syria" is one indexed join however deep the tree, and bulk
imports (COPY) keep it right without help from the application.
"""

from alembic import op

from db.migrations.sql_script import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


ACLED_TAXONOMY = {
    "Battles": [
        ("Armed clash", "Armed, organised groups engage in a battle, and no reports indicate a change of territorial control."),
        ("Government regains territory", "Government forces or their affiliates regain control of a location held by a non-state group."),
        ("Non-state actor overtakes territory", "A non-state group or foreign force takes control of a location by force."),
    ],
    "Explosions/Remote violence": [
        ("Chemical weapon", "Chemical weapons are used."),
        ("Air/drone strike", "Air or drone strikes, by manned or unmanned aircraft."),
        ("Suicide bomb", "A suicide bombing or attack."),
        ("Shelling/artillery/missile attack", "Long-range artillery, missile or rocket fire."),
        ("Remote explosive/landmine/IED", "Remotely or victim-detonated explosives: IEDs, landmines."),
        ("Grenade", "A grenade or similar hand-thrown explosive."),
    ],
    "Violence against civilians": [
        ("Sexual violence", "Sexual violence against civilians."),
        ("Attack", "An organised armed group attacks unarmed civilians."),
        ("Abduction/forced disappearance", "Civilians abducted or forcibly disappeared."),
    ],
    "Protests": [
        ("Peaceful protest", "Demonstrators engage in a protest without violence or intervention."),
        ("Protest with intervention", "A peaceful protest that authorities or others try to disrupt."),
        ("Excessive force against protesters", "Lethal or severe force against peaceful protesters."),
    ],
    "Riots": [
        ("Violent demonstration", "Demonstrators engage in violence or destruction."),
        ("Mob violence", "A violent mob, without a wider demonstration."),
    ],
    "Strategic developments": [
        ("Agreement", "Agreements between groups: ceasefires, surrender deals, prisoner exchanges and releases."),
        ("Arrests", "Arrests by state forces or other groups."),
        ("Change to group/activity", "A group changes its activity: deployments, launches or pauses of operations, mergers."),
        ("Disrupted weapons use", "Weapons seized or explosives defused before use."),
        ("Headquarters or base established", "A group establishes a base or headquarters."),
        ("Looting/property destruction", "Looting or destruction of property without a battle."),
        ("Non-violent transfer of territory", "Territory changes hands without fighting."),
        ("Other", "Any other strategically important development."),
    ],
}

DATE_PRECISIONS = [
    ("day", 1, "Known to the day: date_start = date_end."),
    ("week", 2, "Known to within about a week; the interval bounds it."),
    ("month", 3, "Known to within about a month; the interval bounds it."),
    ("year", 4, "Known only to within a year or more; the interval bounds it."),
]

# The ranks follow UCDP's where_prec 1-7 so an import maps one to one.
GEO_PRECISIONS = [
    ("exact", 1, "The named locality itself."),
    ("near", 2, "Within about 25 km of the named locality."),
    ("admin2", 3, "Only the second-order administrative area (district) is known."),
    ("admin1", 4, "Only the first-order administrative area (province, governorate) is known."),
    ("region", 5, "A part of a country larger than a province, such as 'northern Syria'."),
    ("country", 6, "Only the country is known."),
    ("water_airspace", 7, "International waters or airspace."),
]

PLACE_KINDS = [
    ("country", 0, "A sovereign state (ISO 3166 codes)."),
    ("admin1", 1, "First-order administrative division: province, governorate, state."),
    ("admin2", 2, "Second-order administrative division: district."),
    ("area", 3, "A named area that is not an administrative unit: a region, front or valley."),
    ("locality", 4, "A city, town, village or site."),
]

# `independent`: a source whose word counts towards "independent sources agree" in the
# attribution rule (db/derive.py). Parties to a conflict and their media are not.
ACTOR_KINDS = [
    ("state", False, "A state or its government."),
    ("government_body", False, "A ministry, department or office of a government."),
    ("armed_forces", False, "A state's armed forces or a branch of them."),
    ("coalition", False, "A coalition of states or forces."),
    ("armed_group", False, "A non-state armed group."),
    ("militia", False, "A militia, pro-government or communal."),
    ("civilians", False, "Civilians, as victims or participants."),
    ("monitor", True, "A monitoring group that documents events."),
    ("media", True, "An independent news organisation."),
    ("state_media", False, "A news outlet run by a state party to a conflict."),
    ("wire_service", True, "A news agency (wire service)."),
    ("international_org", True, "An international organisation such as the UN."),
    ("ngo", True, "A non-governmental organisation."),
    ("person", False, "An individual."),
    ("unknown", False, "An unidentified actor or source."),
]

PREDICATES = [
    ("occurred", "none", "The event happened."),
    ("fatalities", "number", "People killed (low / best / high)."),
    ("civilian_fatalities", "number", "Civilians killed (low / best / high)."),
    ("perpetrator", "actor", "Who carried it out."),
    ("target", "actor", "Who or what was targeted."),
    ("weapon", "text", "The weapon or means used."),
    ("location", "place", "Where it happened."),
    ("date", "date", "When it happened."),
    ("persons_involved", "number", "People involved other than the dead: fighters deployed, captives released."),
]

STANCES = [
    ("asserts", "The claimant states it is so."),
    ("denies", "The claimant states it is not so."),
    ("uncertain", "The claimant says it cannot tell, or neither confirms nor denies."),
    ("concedes", "The claimant admits it of itself (the actor or its own government)."),
]

EVENT_ROLES = [
    ("perpetrator", "Carried out the event."),
    ("target", "Was targeted or harmed."),
    ("participant", "Took part otherwise (a party to an agreement, a deploying force)."),
]

DATASETS = [
    ("conflictkb-seed", "conflictkb seed data", None, "Encoded from the news article in seeds/."),
    ("ucdp-ged", "UCDP Georeferenced Event Dataset", "https://ucdp.uu.se/", "CC BY 4.0"),
    ("ucdp-actor", "UCDP actor ids", "https://ucdp.uu.se/", "CC BY 4.0"),
    ("acled", "Armed Conflict Location & Event Data", "https://acleddata.com/", "ACLED terms of use"),
    ("iso3166", "ISO 3166 country codes", None, None),
]


def _q(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _insert(table, columns, rows):
    values = ",\n  ".join("(" + ", ".join(_q(v) for v in row) + ")" for row in rows)
    op.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES\n  {values}")


def _hierarchy_ddl(table: str) -> str:
    """Name table, closure table and triggers for a self-referencing hierarchy."""
    singular = table[:-1]
    return f"""
CREATE TABLE {singular}_names (
  {singular}_id uuid NOT NULL REFERENCES {table} (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (btrim(name) <> ''),
  name_norm text NOT NULL CHECK (name_norm <> ''),
  PRIMARY KEY ({singular}_id, name_norm)
);
CREATE INDEX ix_{singular}_names_name_norm ON {singular}_names (name_norm);

-- (ancestor, descendant, depth) for every pair, including (x, x, 0).
CREATE TABLE {singular}_lineage (
  ancestor_id uuid NOT NULL REFERENCES {table} (id) ON DELETE CASCADE,
  descendant_id uuid NOT NULL REFERENCES {table} (id) ON DELETE CASCADE,
  depth smallint NOT NULL CHECK (depth >= 0),
  PRIMARY KEY (ancestor_id, descendant_id)
);
CREATE INDEX ix_{singular}_lineage_descendant ON {singular}_lineage (descendant_id, depth);

CREATE FUNCTION {singular}_lineage_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO {singular}_lineage (ancestor_id, descendant_id, depth) VALUES (NEW.id, NEW.id, 0);
  INSERT INTO {singular}_lineage (ancestor_id, descendant_id, depth)
    SELECT ancestor_id, NEW.id, depth + 1 FROM {singular}_lineage WHERE descendant_id = NEW.parent_id;
  RETURN NULL;
END $$;
CREATE TRIGGER tr_{table}_lineage_insert AFTER INSERT ON {table}
  FOR EACH ROW EXECUTE FUNCTION {singular}_lineage_insert();

-- Moving a node moves its whole subtree; a move under its own subtree is a cycle.
CREATE FUNCTION {singular}_lineage_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.parent_id IS NOT NULL AND EXISTS (
      SELECT 1 FROM {singular}_lineage WHERE ancestor_id = NEW.id AND descendant_id = NEW.parent_id) THEN
    RAISE EXCEPTION 'parent_id % would make a cycle under %', NEW.parent_id, NEW.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  DELETE FROM {singular}_lineage l
   USING {singular}_lineage sub
   WHERE sub.ancestor_id = NEW.id AND l.descendant_id = sub.descendant_id
     AND l.ancestor_id IN (SELECT ancestor_id FROM {singular}_lineage
                            WHERE descendant_id = NEW.id AND ancestor_id <> NEW.id);
  INSERT INTO {singular}_lineage (ancestor_id, descendant_id, depth)
    SELECT sup.ancestor_id, sub.descendant_id, sup.depth + sub.depth + 1
      FROM {singular}_lineage sup, {singular}_lineage sub
     WHERE sup.descendant_id = NEW.parent_id AND sub.ancestor_id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER tr_{table}_lineage_move AFTER UPDATE OF parent_id ON {table}
  FOR EACH ROW WHEN (OLD.parent_id IS DISTINCT FROM NEW.parent_id)
  EXECUTE FUNCTION {singular}_lineage_move();
"""


def _external_ids_ddl(table: str) -> str:
    singular = table[:-1]
    return f"""
CREATE TABLE {singular}_external_ids (
  dataset text NOT NULL REFERENCES datasets (code),
  external_id text NOT NULL CHECK (external_id <> ''),
  {singular}_id uuid NOT NULL REFERENCES {table} (id) ON DELETE CASCADE,
  PRIMARY KEY (dataset, external_id)
);
CREATE INDEX ix_{singular}_external_ids_{singular} ON {singular}_external_ids ({singular}_id);
"""


def _touch_trigger(table: str) -> str:
    return f"""CREATE TRIGGER tr_{table}_touch BEFORE UPDATE ON {table}
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();"""


def upgrade() -> None:
    execute_script("""
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

CREATE TABLE event_types (name text PRIMARY KEY, description text NOT NULL);
CREATE TABLE sub_event_types (
  name text PRIMARY KEY,
  event_type text NOT NULL REFERENCES event_types (name),
  description text NOT NULL,
  UNIQUE (event_type, name)
);
CREATE TABLE date_precisions (code text PRIMARY KEY, rank smallint NOT NULL UNIQUE, description text NOT NULL);
CREATE TABLE geo_precisions (code text PRIMARY KEY, rank smallint NOT NULL UNIQUE, description text NOT NULL);
CREATE TABLE place_kinds (code text PRIMARY KEY, level smallint NOT NULL UNIQUE, description text NOT NULL);
CREATE TABLE actor_kinds (code text PRIMARY KEY, independent boolean NOT NULL, description text NOT NULL);
CREATE TABLE predicates (
  code text PRIMARY KEY,
  value_kind text NOT NULL CHECK (value_kind IN ('none', 'number', 'actor', 'place', 'date', 'text')),
  description text NOT NULL
);
CREATE TABLE stances (code text PRIMARY KEY, description text NOT NULL);
CREATE TABLE event_roles (code text PRIMARY KEY, description text NOT NULL);
CREATE TABLE datasets (code text PRIMARY KEY, name text NOT NULL, url text, licence text);

CREATE TABLE places (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (btrim(name) <> ''),
  kind text NOT NULL REFERENCES place_kinds (code),
  parent_id uuid REFERENCES places (id),
  iso2 char(2) CHECK (iso2 ~ '^[A-Z]{2}$'),
  iso3 char(3) CHECK (iso3 ~ '^[A-Z]{3}$'),
  latitude double precision CHECK (latitude BETWEEN -90 AND 90),
  longitude double precision CHECK (longitude BETWEEN -180 AND 180),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((latitude IS NULL) = (longitude IS NULL)),
  CHECK (kind = 'country' OR (iso2 IS NULL AND iso3 IS NULL)),
  CHECK (parent_id <> id)
);
CREATE UNIQUE INDEX ux_places_iso3 ON places (iso3) WHERE iso3 IS NOT NULL;
CREATE INDEX ix_places_parent ON places (parent_id);
CREATE INDEX ix_places_kind_name ON places (kind, name, id);

CREATE TABLE actors (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (btrim(name) <> ''),
  kind text NOT NULL REFERENCES actor_kinds (code),
  parent_id uuid REFERENCES actors (id),
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (parent_id <> id)
);
CREATE INDEX ix_actors_parent ON actors (parent_id);
CREATE INDEX ix_actors_name ON actors (name, id);

-- Time-bounded membership: the RAF in the US-led coalition, the YPG within the SDF.
CREATE TABLE actor_memberships (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  member_id uuid NOT NULL REFERENCES actors (id) ON DELETE CASCADE,
  group_id uuid NOT NULL REFERENCES actors (id) ON DELETE CASCADE,
  relation text NOT NULL DEFAULT 'member' CHECK (relation IN ('member', 'partner')),
  valid_from date,
  valid_to date,
  CHECK (member_id <> group_id),
  CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from)
);
CREATE UNIQUE INDEX ux_actor_memberships ON actor_memberships (member_id, group_id, relation, coalesce(valid_from, '-infinity'::date));
CREATE INDEX ix_actor_memberships_group ON actor_memberships (group_id);

CREATE TABLE documents (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  publisher text,
  publisher_actor_id uuid REFERENCES actors (id),
  title text,
  url text,
  published_at date,
  language text CHECK (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]+)*$'),
  excerpt text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (coalesce(publisher, title, url) IS NOT NULL)
);
CREATE INDEX ix_documents_published ON documents (published_at DESC, id DESC);

CREATE TABLE events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type text NOT NULL REFERENCES event_types (name),
  sub_event_type text NOT NULL,
  type_of_violence smallint CHECK (type_of_violence IN (1, 2, 3)),
  date_start date NOT NULL,
  date_end date NOT NULL,
  date_precision text NOT NULL REFERENCES date_precisions (code),
  place_id uuid NOT NULL REFERENCES places (id),
  geo_precision text NOT NULL REFERENCES geo_precisions (code),
  latitude double precision CHECK (latitude BETWEEN -90 AND 90),
  longitude double precision CHECK (longitude BETWEEN -180 AND 180),
  summary text,
  -- Derived from claims by db/derive.py in the transaction that changes them.
  fatalities_low integer,
  fatalities_best integer,
  fatalities_high integer,
  civilian_fatalities_low integer,
  civilian_fatalities_best integer,
  civilian_fatalities_high integer,
  fatality_claim_ids uuid[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (event_type, sub_event_type) REFERENCES sub_event_types (event_type, name),
  CHECK (date_end >= date_start),
  CHECK (date_precision <> 'day' OR date_end = date_start),
  CHECK ((latitude IS NULL) = (longitude IS NULL))
);
CREATE INDEX ix_events_date ON events (date_start DESC, id DESC);
CREATE INDEX ix_events_date_end ON events (date_end);
CREATE INDEX ix_events_place ON events (place_id);
CREATE INDEX ix_events_sub_event_type_date ON events (sub_event_type, date_start DESC, id DESC);
CREATE INDEX ix_events_fatalities ON events (fatalities_best DESC NULLS LAST, id DESC);

CREATE TABLE event_actors (
  event_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  actor_id uuid NOT NULL REFERENCES actors (id),
  role text NOT NULL REFERENCES event_roles (code),
  -- Derived (db/derive.py) for perpetrator and target; NULL for participants.
  status text CHECK (status IN ('confirmed', 'alleged', 'contested', 'unknown')),
  status_claim_ids uuid[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (event_id, actor_id, role)
);
CREATE INDEX ix_event_actors_actor ON event_actors (actor_id, role);

CREATE TABLE claims (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  claimant_id uuid NOT NULL REFERENCES actors (id),
  via_id uuid REFERENCES actors (id),
  speaker text,
  document_id uuid REFERENCES documents (id),
  predicate text NOT NULL REFERENCES predicates (code),
  stance text NOT NULL REFERENCES stances (code),
  value_low integer CHECK (value_low >= 0),
  value_best integer CHECK (value_best >= 0),
  value_high integer CHECK (value_high >= 0),
  value_actor_id uuid REFERENCES actors (id),
  value_place_id uuid REFERENCES places (id),
  value_date date,
  value_text text,
  quote text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (value_low IS NULL OR value_best IS NULL OR value_low <= value_best),
  CHECK (value_best IS NULL OR value_high IS NULL OR value_best <= value_high),
  CHECK (value_low IS NULL OR value_high IS NULL OR value_low <= value_high)
);
CREATE INDEX ix_claims_event ON claims (event_id);
CREATE INDEX ix_claims_claimant ON claims (claimant_id, event_id);
CREATE INDEX ix_claims_value_actor ON claims (value_actor_id) WHERE value_actor_id IS NOT NULL;
CREATE INDEX ix_claims_document ON claims (document_id);

-- A claim's value must be of the kind its predicate takes (predicates.value_kind);
-- checked here so bulk loads are held to it as well as the API.
CREATE FUNCTION claims_check_value() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  kind text;
  given text[] := array_remove(ARRAY[
    CASE WHEN coalesce(NEW.value_low, NEW.value_best, NEW.value_high) IS NOT NULL THEN 'number' END,
    CASE WHEN NEW.value_actor_id IS NOT NULL THEN 'actor' END,
    CASE WHEN NEW.value_place_id IS NOT NULL THEN 'place' END,
    CASE WHEN NEW.value_date IS NOT NULL THEN 'date' END,
    CASE WHEN NEW.value_text IS NOT NULL THEN 'text' END], NULL);
BEGIN
  SELECT value_kind INTO kind FROM predicates WHERE code = NEW.predicate;
  IF cardinality(given) > 1 OR (cardinality(given) = 1 AND given[1] <> kind) THEN
    RAISE EXCEPTION 'a % claim takes a value of kind %, not %', NEW.predicate, kind, array_to_string(given, ', ')
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tr_claims_check_value BEFORE INSERT OR UPDATE ON claims
  FOR EACH ROW EXECUTE FUNCTION claims_check_value();
""")
    for table in ("places", "actors"):
        execute_script(_hierarchy_ddl(table))
    for table in ("events", "actors", "places"):
        execute_script(_external_ids_ddl(table))
    for table in ("places", "actors", "documents", "events", "claims"):
        op.execute(_touch_trigger(table))

    _insert("event_types", ["name", "description"],
            [(t, f"ACLED event type: {t}.") for t in ACLED_TAXONOMY])
    _insert("sub_event_types", ["name", "event_type", "description"],
            [(s, t, d) for t, subs in ACLED_TAXONOMY.items() for s, d in subs])
    _insert("date_precisions", ["code", "rank", "description"], DATE_PRECISIONS)
    _insert("geo_precisions", ["code", "rank", "description"], GEO_PRECISIONS)
    _insert("place_kinds", ["code", "level", "description"], PLACE_KINDS)
    _insert("actor_kinds", ["code", "independent", "description"], ACTOR_KINDS)
    _insert("predicates", ["code", "value_kind", "description"], PREDICATES)
    _insert("stances", ["code", "description"], STANCES)
    _insert("event_roles", ["code", "description"], EVENT_ROLES)
    _insert("datasets", ["code", "name", "url", "licence"], DATASETS)


def downgrade() -> None:
    for table in ("claims", "event_actors", "event_external_ids", "events", "documents",
                  "actor_memberships", "actor_external_ids", "actor_lineage", "actor_names", "actors",
                  "place_external_ids", "place_lineage", "place_names", "places",
                  "datasets", "event_roles", "stances", "predicates", "actor_kinds", "place_kinds",
                  "geo_precisions", "date_precisions", "sub_event_types", "event_types"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for fn in ("claims_check_value", "place_lineage_insert", "place_lineage_move",
               "actor_lineage_insert", "actor_lineage_move", "touch_updated_at"):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}() CASCADE")
