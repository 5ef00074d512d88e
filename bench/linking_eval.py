"""Linking evaluation: how well cross-source linking (db/linking.py) finds the one UCDP
record an ACLED record re-reports, among the real UCDP events around it, and what
linking costs an import.

    .venv/bin/python bench/linking_eval.py [--pairs 1200] [--seed 14] [--both-orders] [--json]

It starts an embedded PostgreSQL in var/bench-linking, makes a fresh database
(migrated, the article seeded), imports the UCDP Syria extract (16,566 events) with the
normal importer, then imports a labelled ACLED export: --pairs extract events, sampled
with --seed, each re-reported as ACLED would (its names, precisions, taxonomy, actor
names from seeds/actor_crosswalk.csv, notes), with one primary perturbation (its
"kind") and the usual differences besides. Row `EVAL<n>` re-reports one known UCDP
event, so the truth is known; the distractors are the extract's real neighbours.

It reads only `event_matches` (the pairs, their scores and parts) and the events'
external ids, and prints, overall and per kind: links precision, recall, candidate
recall, top-1 accuracy, candidates per record; top-1 over the records whose true record
has no twin (a candidate equal to it in every part of the score); then the time each
import took and its share spent linking (ImportReport.linking_seconds). --both-orders
imports the two files again into a second database, ACLED first, says whether the
linked pairs are the same, and times the extract's import beside ACLED's records.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import gzip
import json
import math
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.queries.matches import MATCH_PARTS  # noqa: E402  (the parts of a score, as /matches shows them)

EXTRACT = ROOT / "seeds" / "ucdp-ged-syria-2016-2019.csv.gz"
CROSSWALK = ROOT / "seeds" / "actor_crosswalk.csv"
KINDS = ("clean", "week", "month", "shifted", "admin", "spelling", "unmapped", "figures", "other-source")
KIND_MEANS = {
    "clean": "only the differences every re-report has (names, taxonomy, notes, <=1 km)",
    "week": "time_precision 2 around a day within +-2 of the true one",
    "month": "time_precision 3 (the month)",
    "shifted": "the day moved by 1",
    "admin": "geo_precision 3: the admin1 only, at its main town",
    "spelling": "other spellings of admin1, admin2 and location; up to 5 km off; geo 1 or 2",
    "unmapped": "one side named outside the crosswalk (Unidentified Armed Group (Syria))",
    "figures": "fatalities moved within UCDP's low..high or +-25%",
    "other-source": "another outlet than UCDP's source; no headline words in the notes",
}
TARGETS = {"precision": 0.95, "recall": 0.90, "top1": 0.95, "linking_share": 0.20}
ACLED_COLUMNS = ["event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type",
                 "sub_event_type", "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2",
                 "interaction", "civilian_targeting", "iso", "region", "country", "admin1", "admin2", "admin3",
                 "location", "latitude", "longitude", "geo_precision", "source", "source_scale", "notes",
                 "fatalities", "tags", "timestamp"]

# ---------------------------------------------------------------- the labelled set

# Each governorate's main town, where ACLED puts an event it can place only to the
# admin1 (geo_precision 3). Rif Dimashq's seat is Damascus itself: Duma, its largest
# town, stands in for it.
ADMIN1_TOWNS = {
    "Aleppo Governorate": (36.2021, 37.1343), "Idlib Governorate": (35.9306, 36.6339),
    "Hamah Governorate": (35.1318, 36.7578), "Homs Governorate": (34.7308, 36.7094),
    "Damascus Governorate": (33.5102, 36.2913), "Rif Dimashq Governorate": (33.5711, 36.4011),
    "Deir ez Zor Governorate": (35.3354, 40.1408), "Ar Raqqah Governorate": (35.9528, 39.0079),
    "Daraa Governorate": (32.6189, 36.1021), "Al Hasakah Governorate": (36.5119, 40.7422),
    "Latakia Governorate": (35.5317, 35.7915), "Quneitra Governorate": (33.1256, 35.8242),
    "As Suwayda Governorate": (32.7090, 36.5660), "Tartus Governorate": (34.8890, 35.8866),
}
# Other transliterations of the governorates (OCHA's, ACLED's, the press's): none
# normalises to a name the knowledge base already has for it.
ADMIN1_SPELLINGS = {
    "Aleppo Governorate": ["Halab"], "Idlib Governorate": ["Idleb"], "Hamah Governorate": ["Hama"],
    "Homs Governorate": ["Hims"], "Damascus Governorate": ["Dimashq"],
    "Rif Dimashq Governorate": ["Rural Damascus", "Reef Damascus"],
    "Deir ez Zor Governorate": ["Dayr az Zawr", "Deir Ezzor"], "Ar Raqqah Governorate": ["Ar-Raqqa", "Raqqa"],
    "Daraa Governorate": ["Dar'a", "Deraa"], "Al Hasakah Governorate": ["Al-Hasakeh", "Hasakeh"],
    "Latakia Governorate": ["Lattakia", "Al Ladhiqiyah"], "Quneitra Governorate": ["Al Qunaytirah", "Kuneitra"],
    "As Suwayda Governorate": ["As-Sweida", "Suwaida"], "Tartus Governorate": ["Tartous"],
}
# Word-level transliteration variants, then letter-level ones, for places below admin1.
WORD_SPELLINGS = {
    "tall": "Tell", "tell": "Tall", "tal": "Tell", "deir": "Dayr", "dayr": "Deir", "dair": "Deir", "jabal": "Jebel",
    "jebel": "Jabal", "ain": "Ayn", "ayn": "Ein", "ein": "Ain", "kafr": "Kfar", "kfar": "Kafr", "maarat": "Ma'arrat",
    "sheikh": "Shaykh", "shaykh": "Sheikh", "abu": "Abou", "qasr": "Kasr", "khan": "Khan", "beit": "Bayt",
    "bayt": "Beit", "mazraat": "Mazra'at", "qaryat": "Qariyat", "jisr": "Jisr", "hayy": "Hay", "harat": "Harat",
}
LETTER_SPELLINGS = [(r"ou", "u"), (r"oo", "u"), (r"ee", "i"), (r"aa", "a"), (r"ei", "ai"), (r"q", "k"),
                    (r"Q", "K"), (r"ah\b", "a"), (r"eh\b", "ah"), (r"(?<=[a-z])i(?=[a-z])", "e"),
                    (r"(?<=[a-z])u(?=[a-z])", "ou"), (r"dh", "z"), (r"kh", "h")]
PLACE_SUFFIXES = (" town", " village", " city", " suburb", " district", " Governorate", " area")
# Outlets a re-report may cite instead of UCDP's source (kind `other-source`).
OTHER_OUTLETS = ["Syrian Network for Human Rights", "Enab Baladi", "Step News Agency", "Smart News Agency",
                 "Orient News", "Al-Masdar News", "SANA", "North Press Agency", "Hawar News Agency",
                 "Deir Ezzor 24", "Syria Direct", "Liveuamap", "Shaam News Network", "Qasioun News Agency"]
ACLED_SOURCE_NAMES = {"SOHR": "Syrian Observatory for Human Rights", "Air Wars": "Airwars"}
UNMAPPED_ACTOR = "Unidentified Armed Group (Syria)"
# ACLED codes a happening's type from what was reported: the headline's words first.
AIR_WORDS = re.compile(r"\bair ?strikes?\b|\bairstrikes?\b|\bbombard\w*|\bwarplanes?\b", re.I)
SHELLING_WORDS = re.compile(r"\bshell(s|ed|ing)?\b|\bartillery\b|\brockets?\b|\bmissiles?\b", re.I)
IED_WORDS = re.compile(r"\bieds?\b|\blandmines?\b|\bexplosions?\b|\bcar bombs?\b|\bexplosive devices?\b", re.I)
FOREIGN_FORCES = re.compile(r"^(Military|Police) Forces of (?!Syria)|^Hezbollah$|^PMF:")


@dataclass(frozen=True)
class Labelled:
    """One re-report: its ACLED id, the UCDP event it re-reports, its kind and what
    was done to it (for the examples)."""

    acled_id: str
    ucdp_id: str
    kind: str
    detail: str


def read_extract() -> list[dict[str, str]]:
    with gzip.open(EXTRACT, "rt", encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def read_crosswalk() -> dict[str, list[str]]:
    """ACLED's names for each UCDP side, in the file's order (the first is the usual one)."""
    names: dict[str, list[str]] = defaultdict(list)
    with CROSSWALK.open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            names[row["ucdp_name"]].append(row["acled_name"])
    return dict(names)


def _strip_suffix(name: str) -> str:
    for suffix in PLACE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _variants(name: str) -> set[str]:
    from db.names import name_variants
    return name_variants(name)


def respell(name: str, rng: random.Random) -> str:
    """Another transliteration of a place name that the knowledge base's name
    normalisation (db/names.py) does not equate with it."""
    words = name.split(" ")
    swappable = [i for i, w in enumerate(words) if w.lower().strip("-'") in WORD_SPELLINGS]
    candidates = []
    if swappable:
        i = rng.choice(swappable)
        candidates.append(" ".join(words[:i] + [WORD_SPELLINGS[words[i].lower().strip("-'")]] + words[i + 1:]))
    rules = [(p, r) for p, r in LETTER_SPELLINGS if re.search(p, name)]
    rng.shuffle(rules)
    for pattern, replacement in rules:
        matches = list(re.finditer(pattern, name))
        m = rng.choice(matches)
        candidates.append(name[:m.start()] + replacement + name[m.end():])
    candidates.append(name + "h" if not name.endswith("h") else name[:-1])
    before = _variants(name)
    return next(c for c in candidates if _variants(c) and not _variants(c) & before)


def _jitter(lat: float, lon: float, km: float, rng: random.Random) -> tuple[float, float]:
    """A point within `km` of (lat, lon), uniform over the disc."""
    distance, bearing = km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    dlat = distance * math.cos(bearing) / 111.2
    dlon = distance * math.sin(bearing) / (111.2 * math.cos(math.radians(lat)))
    return round(lat + dlat, 4), round(lon + dlon, 4)


def acled_types(row: dict[str, str]) -> tuple[str, str]:
    """ACLED's (type, sub-type) for a UCDP record: its headline's words, then UCDP's
    type of violence. Only a state has aircraft: a headline's air strikes in a fight
    between non-state sides are another event of the same report."""
    headline = row["source_headline"]
    if AIR_WORDS.search(headline) and (row["side_a"].startswith("Government of")
                                       or row["side_b"].startswith("Government of")):
        return "Explosions/Remote violence", "Air/drone strike"
    if SHELLING_WORDS.search(headline):
        return "Explosions/Remote violence", "Shelling/artillery/missile attack"
    if IED_WORDS.search(headline):
        return "Explosions/Remote violence", "Remote explosive/landmine/IED"
    if row["type_of_violence"] == "3":
        return "Violence against civilians", "Attack"
    return "Battles", "Armed clash"


def _acled_name(side: str, crosswalk: dict[str, list[str]], sub_event_type: str, year: int,
                rng: random.Random) -> str:
    """ACLED's name for a UCDP side: its usual one mostly, another of its names at
    times (an air force only for air strikes; a period that holds the year)."""
    def fits(name: str) -> bool:
        air = "Air Force" in name or "and/or Russian" in name
        if air != (sub_event_type == "Air/drone strike") and (air or name.startswith("QDW:")):
            return False  # an air force strikes from the air, a militia does not
        period = re.search(r"\((\d{4})-(\d{4})?\)", name)
        return not period or int(period.group(1)) <= year <= int(period.group(2) or 9999)

    if side not in crosswalk:  # (0.6% of the extract's sides): its name, hyphens dropped the ACLED way
        return side.replace("-", " ")
    names = [n for n in crosswalk[side] if fits(n)]
    return names[0] if rng.random() < 0.75 or len(names) == 1 else rng.choice(names[1:])


def _inter(name: str) -> int:
    if name.startswith("Civilians"):
        return 7
    if name.startswith(("Military Forces of Syria", "Allied Syrian")):
        return 1
    if FOREIGN_FORCES.search(name):
        return 8
    if name.startswith(("QDW:", "Unidentified")):
        return 3
    return 2


def _short(name: str) -> str:
    """An actor as ACLED's notes call it: without its period or acronym."""
    name = re.sub(r"\s*\([^)]*\)", "", name)
    return name.split(": ", 1)[1] if ": " in name else name


def _notes(day: dt.date, precision: int, sub_event_type: str, actor1: str, actor2: str, place: str,
           fatalities: int, headline_words: str | None) -> str:
    when = {1: f"On {day.day} {day:%B %Y}", 2: f"Around {day.day} {day:%B %Y}", 3: f"In {day:%B %Y}"}[precision]
    a1, a2 = _short(actor1), _short(actor2)
    civilians = actor2.startswith("Civilians")
    what = {
        "Armed clash": f"{a1} clashed with {a2} in {place}",
        "Air/drone strike": f"{a1} carried out air strikes on {place}" + ("" if civilians else f", targeting {a2}"),
        "Shelling/artillery/missile attack": f"{a1} shelled {place}" + ("" if civilians else f", held by {a2}"),
        "Remote explosive/landmine/IED": f"an explosive device planted by {a1} went off in {place}",
        "Attack": f"{a1} attacked civilians in {place}",
    }[sub_event_type]
    quoted = f" Reported as: {headline_words}." if headline_words else ""
    toll = f" {fatalities} killed." if fatalities else " No fatalities reported."
    return f"{when}, {what}.{quoted}{toll}"


def _true_day(row: dict[str, str]) -> dt.date:
    start, end = dt.date.fromisoformat(row["date_start"][:10]), dt.date.fromisoformat(row["date_end"][:10])
    return start + (end - start) // 2


def _eligible(kind: str, row: dict[str, str]) -> bool:
    if kind in ("spelling", "admin"):  # (a place known only to its admin1 stays so)
        return row["where_prec"] in ("1", "2", "3")
    if kind == "figures":
        return int(row["high"]) > int(row["low"]) or int(row["best"]) >= 2
    return True


def _capital_admin2(rows: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    """Each governorate's main town as UCDP names it, and its admin2: those of the
    extract's located event nearest to the town's point."""
    best: dict[str, tuple[float, str, str]] = {}
    for row in rows:
        admin1 = row["adm_1"]
        if admin1 not in ADMIN1_TOWNS or row["where_prec"] != "1" or not row["adm_2"]:
            continue
        lat, lon = ADMIN1_TOWNS[admin1]
        d = (float(row["latitude"]) - lat) ** 2 + ((float(row["longitude"]) - lon) * math.cos(math.radians(lat))) ** 2
        if admin1 not in best or d < best[admin1][0]:
            best[admin1] = (d, _strip_suffix(row["where_coordinates"]), row["adm_2"])
    return {admin1: (town, admin2) for admin1, (_, town, admin2) in best.items()}


def make_labelled_set(extract: list[dict[str, str]], crosswalk: dict[str, list[str]], pairs: int, seed: int
                      ) -> tuple[list[Labelled], list[dict[str, object]]]:
    """`pairs` extract events re-reported as ACLED rows (deterministic for a seed):
    the kinds take turns over the shuffled events placed at least to a governorate
    (ACLED places nothing only to the country), each event the next one its kind can
    take. Returns the labels and the rows, in the file's order."""
    rng = random.Random(seed)
    pool = [r for r in extract if r["adm_1"] and r["where_prec"] != "6"]
    rng.shuffle(pool)
    capitals = _capital_admin2(extract)
    chosen: list[tuple[str, dict[str, str]]] = []
    taken: set[str] = set()
    cursor = {kind: 0 for kind in KINDS}
    while len(chosen) < pairs:
        kind = KINDS[len(chosen) % len(KINDS)]
        while cursor[kind] < len(pool) and (pool[cursor[kind]]["id"] in taken
                                            or not _eligible(kind, pool[cursor[kind]])):
            cursor[kind] += 1
        if cursor[kind] == len(pool):
            raise SystemExit(f"not enough extract events for {pairs} pairs")
        row = pool[cursor[kind]]
        taken.add(row["id"])
        chosen.append((kind, row))
    labels, rows = [], []
    for n, (kind, row) in enumerate(chosen, start=1):
        label, acled = _re_report(f"EVAL{n}", kind, row, crosswalk, capitals, rng)
        labels.append(label)
        rows.append(acled)
    return labels, rows


def _re_report(acled_id: str, kind: str, row: dict[str, str], crosswalk: dict[str, list[str]],
               capitals: dict[str, tuple[str, str]], rng: random.Random) -> tuple[Labelled, dict[str, object]]:
    details = []
    # when: a range UCDP knows only loosely is a week or a month to ACLED too
    day, precision = _true_day(row), 1
    span = (dt.date.fromisoformat(row["date_end"][:10]) - dt.date.fromisoformat(row["date_start"][:10])).days
    if span:
        precision = 2 if span <= 6 else 3
    if kind == "week":
        offset = rng.randint(-2, 2)
        day, precision = day + dt.timedelta(days=offset), 2
        details.append(f"week around {day} ({offset:+d} d)")
    elif kind == "month":
        day, precision = day.replace(day=15), 3
        details.append(f"month {day:%Y-%m}")
    elif kind == "shifted":
        offset = rng.choice((-1, 1))
        day, precision = day + dt.timedelta(days=offset), 1
        details.append(f"day {day} ({offset:+d} d)")

    # where: ACLED's precision from UCDP's, names without UCDP's suffixes
    lat, lon = float(row["latitude"]), float(row["longitude"])
    admin1, admin2 = _strip_suffix(row["adm_1"]), _strip_suffix(row["adm_2"])
    location = _strip_suffix(row["where_coordinates"])
    where_prec = int(row["where_prec"])
    geo = 1 if where_prec == 1 else 2 if where_prec in (2, 3) else 3
    if kind == "admin":
        geo = 3
    if geo == 3:  # ACLED's admin1-only events sit at the governorate's main town
        lat, lon = ADMIN1_TOWNS[row["adm_1"]]
        location, capital_admin2 = capitals[row["adm_1"]]
        admin2 = _strip_suffix(capital_admin2)
        if kind == "admin":
            details.append(f"admin1 only, at {location}")
    elif kind == "spelling":
        admin1 = rng.choice(ADMIN1_SPELLINGS[row["adm_1"]])
        admin2 = respell(admin2, rng) if admin2 else admin2
        location = respell(location, rng)
        lat, lon = _jitter(lat, lon, 5.0, rng)
        geo = rng.choice((1, 2))
        details.append(f"{location} ({admin2}, {admin1}), {lat},{lon}")
    elif rng.random() < 0.5:  # ACLED's gazetteer puts a town a little elsewhere
        lat, lon = _jitter(lat, lon, 1.0, rng)

    # who and what: the ACLED way (for remote violence actor1 is who fired: the state
    # for strikes and shelling, the other side for a bomb)
    event_type, sub_event_type = acled_types(row)
    side1, side2 = row["side_a"], row["side_b"]
    if event_type == "Explosions/Remote violence" and side2 != "Civilians":
        state1, state2 = side1.startswith("Government of"), side2.startswith("Government of")
        bomb = sub_event_type == "Remote explosive/landmine/IED"
        if (state1 and not state2) if bomb else (state2 and not state1):
            side1, side2 = side2, side1
    actor1 = _acled_name(side1, crosswalk, sub_event_type, day.year, rng)
    actor2 = _acled_name(side2, crosswalk, sub_event_type, day.year, rng)
    if kind == "unmapped":
        if actor2.startswith("Civilians") or (not actor1.startswith("Civilians") and rng.random() < 0.5):
            actor1 = UNMAPPED_ACTOR
        else:
            actor2 = UNMAPPED_ACTOR
        details.append(f"{actor1} / {actor2}")
    if event_type == "Battles" and rng.random() < 0.5:
        actor1, actor2 = actor2, actor1

    low, best, high = int(row["low"]), int(row["best"]), int(row["high"])
    fatalities = best
    if kind == "figures":
        if high > low:
            options = [n for n in range(low, high + 1) if n != best] or [high]
        else:
            options = [n for n in range(max(0, round(best * 0.75)), round(best * 1.25) + 1) if n != best] or [best + 1]
        fatalities = rng.choice(options)
        details.append(f"{fatalities} killed (UCDP {low}/{best}/{high})")

    offices = list(dict.fromkeys(o.strip() for o in row["source_office"].split(";") if o.strip()))
    same_source = kind != "other-source"
    if same_source:
        source = "; ".join(ACLED_SOURCE_NAMES.get(o, o) for o in offices)
    else:
        source = rng.choice([o for o in OTHER_OUTLETS if o not in offices])
        details.append(f"source {source} (UCDP: {row['source_office']})")
    headline = row["source_headline"].split(";")[0].split()
    quoted = None
    if same_source and len(headline) >= 4 and rng.random() < 0.7:
        length = rng.randint(3, min(8, len(headline)))
        start = rng.randrange(len(headline) - length + 1)
        quoted = " ".join(headline[start:start + length])
    place = f"{location} ({', '.join(n for n in (admin2, admin1) if n)})"
    inter1, inter2 = _inter(actor1), _inter(actor2)
    acled = {
        "event_id_cnty": acled_id, "event_date": day.isoformat(), "year": day.year, "time_precision": precision,
        "disorder_type": "Political violence", "event_type": event_type, "sub_event_type": sub_event_type,
        "actor1": actor1, "assoc_actor_1": "", "inter1": inter1, "actor2": actor2, "assoc_actor_2": "",
        "inter2": inter2, "interaction": int(f"{min(inter1, inter2)}{max(inter1, inter2)}"),
        "civilian_targeting": "Civilian targeting" if actor2.startswith("Civilians") else "",
        "iso": 760, "region": "Middle East", "country": "Syria", "admin1": admin1, "admin2": admin2, "admin3": "",
        "location": location, "latitude": lat, "longitude": lon, "geo_precision": geo, "source": source,
        "source_scale": "National", "notes": _notes(day, precision, sub_event_type, actor1, actor2, place, fatalities,
                                                    quoted),
        "fatalities": fatalities, "tags": "",
        "timestamp": int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()) + 7 * 86400,
    }
    return Labelled(acled_id, row["id"], kind, "; ".join(details)), acled


def write_acled_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=ACLED_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------- the databases

async def _timed_import(url: str, path: Path, file_format) -> dict[str, object]:
    from db.engine import make_engine
    from db.imports.run import IMPORT_CONNECTIONS, import_file

    engine = make_engine(url, pool_size=IMPORT_CONNECTIONS)
    try:
        started = time.perf_counter()
        report = await import_file(engine, path, file_format)
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return {"file": path.name, "inserted": report.inserted, "rejected": report.rejected_count,
            "rejects": [f"{r.line}: {r.reason}" for r in report.rejected[:5]], "seconds": seconds,
            "linking_seconds": report.linking_seconds, "linking_share": report.linking_seconds / seconds,
            "summary": report.summary()}


def build_database(pg, name: str, files: list[tuple[Path, object]], log=print
                   ) -> tuple[str, list[dict[str, object]]]:
    """A fresh database (migrated, the article seeded), the files imported in order."""
    from bench.import_rate import fresh_database

    url = fresh_database(pg, name)
    imports = []
    for path, file_format in files:
        imports.append(asyncio.run(_timed_import(url, path, file_format)))
        log(f"  {name}: {path.name}: {imports[-1]['summary']} in {imports[-1]['seconds']:.1f} s")
    return url, imports


_PAIRS_OF_LABELLED = """
WITH labelled AS (
  SELECT external_id AS acled_id, event_id FROM event_external_ids
   WHERE dataset = 'acled' AND external_id = ANY(:ids)
), pairs AS (
  SELECT l.acled_id, m.other_id AS other, m FROM labelled l JOIN event_matches m ON m.event_id = l.event_id
  UNION ALL
  SELECT l.acled_id, m.event_id, m FROM labelled l JOIN event_matches m ON m.other_id = l.event_id
)
SELECT p.acled_id, p.other::text AS other, (p.m).score AS score, (p.m).linked AS linked,
       (SELECT min(x.external_id) FROM event_external_ids x
         WHERE x.event_id = p.other AND x.dataset = 'ucdp-ged') AS ucdp_id,
       to_jsonb(p.m) - 'event_id' - 'other_id' - 'score' - 'linked' AS parts
  FROM pairs p
"""


async def _read(url: str, sql: str, params: dict | None = None) -> list:
    from sqlalchemy import text

    from db.engine import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params or {})).all()
    finally:
        await engine.dispose()


def linked_pairs_by_external_id(url: str, linked_only: bool = True) -> set[tuple[str, str]]:
    """Every linked pair (or every pair) as the two events' external ids, sorted."""
    rows = asyncio.run(_read(url, f"""
        WITH names AS (SELECT event_id, min(dataset || ':' || external_id) AS name
                         FROM event_external_ids GROUP BY event_id)
        SELECT a.name AS a, b.name AS b FROM event_matches m
          JOIN names a ON a.event_id = m.event_id JOIN names b ON b.event_id = m.other_id
         {"WHERE m.linked" if linked_only else ""}"""))
    return {tuple(sorted((r.a, r.b))) for r in rows}


# ---------------------------------------------------------------- the measures

def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


_PART_COLUMNS = [column for column, _ in MATCH_PARTS.values()]


def _same_parts(one, other) -> bool:
    return all(one.parts.get(column) == other.parts.get(column) for column in _PART_COLUMNS)


def measure(labels: list[Labelled], pairs: list) -> tuple[dict, dict[str, dict], list[dict]]:
    """Overall and per-kind figures, and per record what happened (for examples)."""
    by_record: dict[str, list] = defaultdict(list)
    for p in pairs:
        if p.ucdp_id is not None:  # (pairs with the seed's events are not a UCDP record)
            by_record[p.acled_id].append(p)
    outcomes = []
    for label in labels:
        candidates = by_record.get(label.acled_id, [])
        true = next((c for c in candidates if c.ucdp_id == label.ucdp_id), None)
        # the winner: the highest score, ties to the lower event id; a tie with a
        # wrong record is a miss however the tie is broken
        winner = min(candidates, key=lambda c: (-c.score, c.other)) if candidates else None
        top1 = true is not None and all(c.score < true.score for c in candidates if c is not true)
        # a twin: another candidate equal to the true one in every part of the score, so
        # that nothing the re-report states tells them apart (UCDP's extract has such
        # neighbours: one village, dyad, day and toll, from one headline)
        twin = true is not None and any(c is not true and _same_parts(c, true) for c in candidates)
        outcomes.append({"label": label, "candidates": len(candidates), "true": true, "winner": winner,
                         "top1": top1, "twin": twin, "linked": [c for c in candidates if c.linked]})

    def figures(group: list[dict]) -> dict:
        linked = sum(len(o["linked"]) for o in group)
        right = sum(1 for o in group for c in o["linked"] if c.ucdp_id == o["label"].ucdp_id)
        return {"records": len(group), "linked_pairs": linked, "true_linked": right,
                "precision": _ratio(right, linked), "recall": _ratio(right, len(group)),
                "candidate_recall": _ratio(sum(o["true"] is not None for o in group), len(group)),
                "top1": _ratio(sum(o["top1"] for o in group), len(group)),
                "with_twin": sum(o["twin"] for o in group),
                "top1_without_twin": _ratio(sum(o["top1"] for o in group if not o["twin"]),
                                            sum(not o["twin"] for o in group)),
                "mean_candidates": _ratio(sum(o["candidates"] for o in group), len(group))}

    per_kind = {kind: figures([o for o in outcomes if o["label"].kind == kind]) for kind in KINDS}
    return figures(outcomes), per_kind, outcomes


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ucdp_brief(row: dict[str, str] | None) -> str:
    if row is None:
        return "?"
    return (f"{row['date_start'][:10]}{'..' + row['date_end'][:10] if row['date_end'] != row['date_start'] else ''} "
            f"{row['where_coordinates']} ({_strip_suffix(row['adm_1'])}), {row['side_a']} - {row['side_b']}, "
            f"best {row['best']}, date_prec {row['date_prec']}, where_prec {row['where_prec']}")


def _pair_brief(pair) -> str:
    if pair is None:
        return "not a candidate"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(pair.parts.items()) if v is not None)
    return f"score {pair.score:.3f}{' linked' if pair.linked else ''} ({parts})"


def pick_examples(outcomes: list[dict], count: int) -> list[dict]:
    """Failures to learn from, taking turns over the kinds: two thirds where a wrong
    record won, the rest where the right one won but was not linked."""
    wrong: dict[str, list[dict]] = defaultdict(list)
    unlinked: dict[str, list[dict]] = defaultdict(list)
    for o in outcomes:
        if not o["top1"] and o["winner"] is not None:
            wrong[o["label"].kind].append(o)
        elif o["top1"] and not o["true"].linked:
            unlinked[o["label"].kind].append(o)

    def take(source: dict[str, list[dict]], n: int) -> list[dict]:
        taken = []
        while len(taken) < n and any(source.values()):
            for kind in KINDS:
                if source[kind] and len(taken) < n:
                    taken.append(source[kind].pop(0))
        return taken

    picked = take(wrong, count - count // 3)
    picked += take(unlinked, count - len(picked))
    return picked + take(wrong, count - len(picked))


# ---------------------------------------------------------------- the command

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1200, help="labelled ACLED records (default 1200)")
    parser.add_argument("--seed", type=int, default=14, help="the sample's and the perturbations' seed")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-linking")
    parser.add_argument("--both-orders", action="store_true",
                        help="also import ACLED first, UCDP second, into a second database and compare")
    parser.add_argument("--examples", type=int, default=8, help="failing examples to print")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    args = parser.parse_args()
    if args.pairs < len(KINDS):
        parser.error(f"--pairs must be at least {len(KINDS)}")

    from db.embedded import EmbeddedPostgres
    from db.imports.acled import ACLED_FORMAT
    from db.imports.ucdp import UCDP_FORMAT

    def log(line: str) -> None:  # progress: on stderr when stdout is the JSON document
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    extract = read_extract()
    labels, rows = make_labelled_set(extract, read_crosswalk(), args.pairs, args.seed)
    acled_file = args.data_dir / f"acled-eval-{args.pairs}-seed{args.seed}.csv"
    write_acled_csv(acled_file, rows)
    log(f"wrote {acled_file} ({len(rows):,} labelled records, {len(KINDS)} kinds)")

    pg = EmbeddedPostgres(args.data_dir)
    pg.start()
    try:
        url, imports = build_database(pg, "linking_eval", [(EXTRACT, UCDP_FORMAT), (acled_file, ACLED_FORMAT)], log)
        pairs = asyncio.run(_read(url, _PAIRS_OF_LABELLED, {"ids": [label.acled_id for label in labels]}))
        total_rows = asyncio.run(_read(url, "SELECT count(*) AS n FROM event_matches"))[0].n
        other_pairs = sum(1 for p in pairs if p.ucdp_id is None)
        symmetry = None
        if args.both_orders:
            forward_linked = linked_pairs_by_external_id(url)
            forward_all = linked_pairs_by_external_id(url, linked_only=False)
            url2, imports2 = build_database(pg, "linking_eval_reversed",
                                            [(acled_file, ACLED_FORMAT), (EXTRACT, UCDP_FORMAT)], log)
            reverse_linked = linked_pairs_by_external_id(url2)
            reverse_all = linked_pairs_by_external_id(url2, linked_only=False)
            symmetry = {"linked_equal": forward_linked == reverse_linked,
                        "linked_pairs": [len(forward_linked), len(reverse_linked)],
                        "linked_only_ucdp_first": sorted(forward_linked - reverse_linked)[:10],
                        "linked_only_acled_first": sorted(reverse_linked - forward_linked)[:10],
                        "pairs_equal": forward_all == reverse_all,
                        "pairs": [len(forward_all), len(reverse_all)],
                        "reversed_imports": imports2}
    finally:
        pg.stop()

    overall, per_kind, outcomes = measure(labels, pairs)
    extract_by_id = {r["id"]: r for r in extract}
    examples = []
    for o in pick_examples(outcomes, args.examples):
        label, winner = o["label"], o["winner"]
        examples.append({
            "acled_id": label.acled_id, "kind": label.kind, "perturbation": label.detail,
            "ucdp_id": label.ucdp_id, "ucdp_record": _ucdp_brief(extract_by_id[label.ucdp_id]),
            "true_pair": _pair_brief(o["true"]), "candidates": o["candidates"],
            "winner_ucdp_id": winner.ucdp_id if winner else None,
            "winner_record": _ucdp_brief(extract_by_id.get(winner.ucdp_id)) if winner else None,
            "winner_pair": _pair_brief(winner)})
    result = {
        "pairs": args.pairs, "seed": args.seed, "database": "linking_eval", "data_dir": str(args.data_dir),
        "overall": overall, "by_kind": per_kind, "event_matches_rows": total_rows,
        "pairs_with_non_ucdp_events": other_pairs, "imports": imports, "targets": TARGETS,
        "symmetry": symmetry, "examples": examples,
    }
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return
    print_tables(result)


def print_tables(r: dict) -> None:
    o = r["overall"]
    print()
    print(f"Labelled set: {r['pairs']:,} ACLED re-reports of UCDP extract events, seed {r['seed']}; "
          f"database {r['database']} in {r['data_dir']} (kept)")
    print()
    print("| kind | records | linked pairs | links precision | recall | candidate recall | top-1 | "
          "candidates / record |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, f in [*r["by_kind"].items(), ("**all**", o)]:
        print(f"| {kind} | {f['records']:,} | {f['linked_pairs']:,} | {_fmt(f['precision'])} | {_fmt(f['recall'])} "
              f"| {_fmt(f['candidate_recall'])} | {_fmt(f['top1'])} | {_fmt(f['mean_candidates'], 1)} |")
    print()
    print(f"event_matches rows in all: {r['event_matches_rows']:,}; pairs of labelled records with events "
          f"of no UCDP record (the seed's), not counted above: {r['pairs_with_non_ucdp_events']:,}")
    for i in r["imports"]:
        if i["rejected"]:
            print(f"{i['file']}: {i['rejected']:,} rows rejected, not in the figures: {'; '.join(i['rejects'])}")
    print()
    print("| import | events | seconds | linking seconds | linking share |")
    print("|---|---:|---:|---:|---:|")
    for i in r["imports"]:
        print(f"| {i['file']} | {i['inserted']:,} | {i['seconds']:.1f} | {i['linking_seconds']:.1f} | "
              f"{i['linking_share']:.1%} |")
    print()
    print(f"top-1 over the {o['records'] - o['with_twin']:,} records whose true record has no twin (another "
          f"candidate equal in every part: nothing the re-report states tells the two apart; "
          f"{o['with_twin']:,} have one): {_fmt(o['top1_without_twin'])}")
    print()
    t = r["targets"]
    reversed_imports = r["symmetry"]["reversed_imports"] if r["symmetry"] else []
    share = max(i["linking_share"] for i in [*r["imports"], *reversed_imports] if i["file"] == EXTRACT.name)
    orders = "either order" if reversed_imports else "beside the seed; --both-orders for beside ACLED"

    def verdict(value: float | None, target: float, higher: bool = True) -> str:
        if value is None:
            return "no figure"
        met = value >= target if higher else value <= target
        return "met" if met else f"missed by {abs(value - target):.3f}"

    print("| target | wanted | got | |")
    print("|---|---:|---:|---|")
    print(f"| links precision | >= {t['precision']} | {_fmt(o['precision'])} | "
          f"{verdict(o['precision'], t['precision'])} |")
    print(f"| links recall | >= {t['recall']} | {_fmt(o['recall'])} | {verdict(o['recall'], t['recall'])} |")
    print(f"| top-1 accuracy | >= {t['top1']} | {_fmt(o['top1'])} | {verdict(o['top1'], t['top1'])} |")
    print(f"| linking share of the extract's import ({orders}) | <= {t['linking_share']:.0%} | {share:.1%} | "
          f"{verdict(share, t['linking_share'], higher=False)} |")
    if r["symmetry"] is not None:
        s = r["symmetry"]
        print()
        print(f"Both orders (ACLED imported first into linking_eval_reversed): linked pairs "
              f"{'equal' if s['linked_equal'] else 'DIFFER'} ({s['linked_pairs'][0]:,} / {s['linked_pairs'][1]:,}); "
              f"all pairs {'equal' if s['pairs_equal'] else 'DIFFER'} ({s['pairs'][0]:,} / {s['pairs'][1]:,})")
        for only, pairs in (("UCDP first", s["linked_only_ucdp_first"]), ("ACLED first", s["linked_only_acled_first"])):
            if pairs:
                print(f"  linked only with {only}: {', '.join(' ~ '.join(p) for p in pairs)}")
        for i in s["reversed_imports"]:
            print(f"  {i['file']}: {i['seconds']:.1f} s, linking {i['linking_seconds']:.1f} s "
                  f"({i['linking_share']:.1%})")
    if r["examples"]:
        print()
        print("Failing examples:")
        for e in r["examples"]:
            print(f"- {e['acled_id']} [{e['kind']}: {e['perturbation'] or KIND_MEANS[e['kind']]}] "
                  f"re-reports UCDP {e['ucdp_id']}: {e['ucdp_record']}")
            print(f"    true pair: {e['true_pair']}; {e['candidates']} candidates")
            if e["winner_ucdp_id"] != e["ucdp_id"]:
                print(f"    won by UCDP {e['winner_ucdp_id']}: {e['winner_record']}")
                print(f"    its pair: {e['winner_pair']}")


if __name__ == "__main__":
    main()
