"""What an importer's mapper makes of one row: an event as the knowledge base sees it,
with the names of its places and actors (matched or created by the loader) and the
source reports behind it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


class RowError(ValueError):
    """A row that cannot be imported; the message says why (the line is added later)."""


@dataclass(frozen=True)
class ActorRef:
    """An actor named by a row: by its name, and its id in the row's dataset if it has one."""

    name: str
    kind: str                          # the kind given to the actor if it is new
    external_id: str | None = None     # e.g. a UCDP side id, in `external_dataset`
    external_dataset: str | None = None


@dataclass(frozen=True)
class SourceReport:
    """One report a row cites (UCDP: one `;`-separated source entry; ACLED: one source)."""

    publisher: str
    published_at: dt.date | None = None
    title: str | None = None


@dataclass(frozen=True)
class Figures:
    low: int | None = None
    best: int | None = None
    high: int | None = None
    quote: str | None = None   # the figures as the row wrote them, when that says more


@dataclass
class ImportedEvent:
    dataset: str                       # datasets.code, e.g. "ucdp-ged"
    external_id: str                   # the event's id in that dataset
    line: int                          # where the row starts in the file (1 = the header)
    event_type: str
    sub_event_type: str
    date_start: dt.date
    date_end: dt.date
    date_precision: str                # day | week | month | year
    country: str
    admin1: str | None
    admin2: str | None
    location: str | None               # the named locality (or area), if the row names one
    geo_precision: str                 # exact | near | admin2 | admin1 | region | country | water_airspace
    latitude: float
    longitude: float
    summary: str | None
    type_of_violence: int | None = None
    participants: list[ActorRef] = field(default_factory=list)
    perpetrators: list[ActorRef] = field(default_factory=list)
    targets: list[ActorRef] = field(default_factory=list)
    sources: list[SourceReport] = field(default_factory=list)
    # the dataset's own figures, claimed by `recorder` in the dataset's record of the event
    fatalities: Figures | None = None
    civilian_fatalities: Figures | None = None
    recorder: ActorRef | None = None
    record_title: str | None = None
    record_url: str | None = None
    # external_id is a hash of the row itself (ACLED rows without event_id_cnty): the
    # file repeating a row verbatim states another event, numbered by the loader, where
    # an id the file states twice is a mistake and its second row rejected
    id_from_row: bool = False

    def number(self, occurrence: int) -> None:
        """Make this the `occurrence`th (2, 3...) row of its file with its id from the
        row: `<id>-<occurrence>`, in its record's title (which names the id) too."""
        numbered = f"{self.external_id}-{occurrence}"
        if self.record_title:
            self.record_title = self.record_title.replace(self.external_id, numbered)
        self.external_id = numbered


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


# Rejected rows kept in the report (all are passed to `on_reject` as they happen): a
# file of a million bad rows must not fill memory.
KEPT_REJECTS = 1000


@dataclass
class ImportReport:
    """What an import did: events inserted, updated (the event or its claims changed),
    unchanged, and the rows rejected with their line and reason."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_count: int = 0
    rejected: list[Rejected] = field(default_factory=list)   # the first KEPT_REJECTS
    created: Counter = field(default_factory=Counter)   # places / actors / documents made along the way
    linking_seconds: float = 0.0   # spent matching with other sources (db/linking.py), of the whole import
    on_reject: Callable[[Rejected], None] | None = None

    def reject(self, line: int, reason: str) -> None:
        rejected = Rejected(line, reason)
        self.rejected_count += 1
        if len(self.rejected) < KEPT_REJECTS:
            self.rejected.append(rejected)
        if self.on_reject:
            self.on_reject(rejected)

    @property
    def rows_read(self) -> int:
        """The file's rows handled so far, whatever became of them."""
        return self.inserted + self.updated + self.unchanged + self.rejected_count

    def summary(self) -> str:
        made = ", ".join(f"{n:,} {what}" for what, n in sorted(self.created.items()) if n)
        return (f"{self.inserted:,} inserted, {self.updated:,} updated, {self.unchanged:,} unchanged, "
                f"{self.rejected_count:,} rejected" + (f"; new {made}" if made else "")
                + f"; linking {self.linking_seconds:.1f} s")


@dataclass(frozen=True)
class Format:
    """A dataset's file format: its columns and how a row (by lower-cased column name,
    and its line) becomes an event or a RowError."""

    name: str
    dataset: str
    required_columns: tuple[str, ...]
    parse: Callable[[dict[str, str], int], ImportedEvent]
