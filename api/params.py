"""Query parameters shared by the REST routes, turned into the query layer's objects."""

import datetime as dt
import inspect
import re
from collections.abc import Callable, Collection
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel, BeforeValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from api.errors import Problem, filter_problem
from api.ratelimit import charge
from db.cost import LIMITS, at_most, check_filter, filter_charge, page_charge
from db.filters import (
    FILTER_FIELDS,
    MAX_COUNT,
    Collapse,
    EventFilter,
    EventWhere,
    FilterError,
    FilterField,
    FilterKind,
    Near,
    filter_of,
)
from db.pagination import PageRequest
from db.queries.claims import ClaimFilter
from db.queries.vocabulary import in_vocabulary

Stance = Literal["asserts", "denies", "uncertain", "concedes"]
EventSortName = Literal["-date", "date", "-fatalities", "fatalities", "relevance", "distance"]

def _iso_date(value: object) -> object:
    """A date as its JSON schema (`format: date`) says: YYYY-MM-DD (pydantic alone also
    takes `0`, as a Unix time)."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise PydanticCustomError("date_format", "must be a date, YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]

# What the API takes as a time: ISO 8601 with or without seconds and an offset (none:
# UTC). Not `format: date-time`, which wants the offset; the schema says this pattern.
ISO_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?$"


def _iso_datetime(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(ISO_DATETIME, value):
        raise PydanticCustomError("datetime_format", "must be an ISO time, YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z|±HH:MM]")
    return value


IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_datetime), WithJsonSchema(
    {"type": "string", "pattern": ISO_DATETIME})]

# A count as the document shows it; its range is checked by the filter (db.filters), as
# GraphQL's and `where`'s are.
Count = Annotated[int, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_COUNT})]


def _numbers(name: str, text: str, form: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise FilterError(name, f"must be {form}, numbers separated by commas", "malformed") from None


def _bbox(name: str, text: str) -> list[float]:
    """`min_lon,min_lat,max_lon,max_lat` as written in a URL (how many, and their ranges:
    the filter's checks)."""
    return _numbers(name, text, "min_lon,min_lat,max_lon,max_lat")


def _near(name: str, text: str) -> Near:
    """`lat,lon,radius_km` as written in a URL."""
    numbers = _numbers(name, text, "lat,lon,radius_km")
    if len(numbers) != 3:
        raise FilterError(name, "must be lat,lon,radius_km (three numbers)", "malformed")
    return Near(*numbers)


# REST's form of each kind of filter field (db.filters.FilterKind): the parameter's type
# and default, and how its text becomes the filter's value (None: as FastAPI parsed it).
_REST_FORMS: dict[FilterKind, tuple[Any, Any, Callable[[str, str], Any] | None]] = {
    FilterKind.DATE: (IsoDate | None, None, None),
    FilterKind.NAMES: (list[str], [], None),
    FilterKind.CHOICES: (list[str], [], None),
    FilterKind.COUNT: (Count | None, None, None),
    FilterKind.FLAG: (bool, False, None),
    FilterKind.BBOX: (str | None, None, _bbox),
    FilterKind.NEAR: (str | None, None, _near),
    FilterKind.TEXT: (str | None, None, None),
}


def _filter_parameter(name: str, spec: FilterField) -> inspect.Parameter:
    kind, default, _ = _REST_FORMS[spec.kind]
    if spec.choices:  # shown in the document; checked by the filter
        kind = list[Annotated[str, WithJsonSchema({"type": "string", "enum": list(spec.choices)})]]
    extra = {"json_schema_extra": in_vocabulary(spec.vocabulary)} if spec.vocabulary else {}
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, Query(description=spec.description, **extra)])


_WHERE = inspect.Parameter("where", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
    str | None, Query(description='JSON in the GraphQL EventWhere grammar, e.g. '
                                  '{"_or": [{"admin1": "Hasakah"}, {"country": "IRQ"}]}.')])
_FILTER_PARAMETERS = [*(_filter_parameter(name, spec) for name, spec in FILTER_FIELDS.items()), _WHERE]


def _where_filter(where: str) -> EventFilter:
    """The `where` parameter's filter; what is wrong in it is named `where`, then where in it."""
    try:
        return EventWhere.model_validate_json(where).to_filter()
    except ValidationError as exc:
        errors = [{"name": "where", "in": "query",
                   "reason": f"{'.'.join(map(str, e['loc'])) or 'JSON'}: {e['msg']}"} for e in exc.errors()]
        raise Problem(422, "where: " + "; ".join(e["reason"] for e in errors), errors=errors) from exc
    except FilterError as exc:
        raise filter_problem(exc, within="where") from exc


# A text parameter given empty (`bbox=`, as a form with the field left blank sends it)
# is as if not given, as the OpenAPI document says of them (a text with no minimum
# length); but for a cursor.

# The dependencies below do no I/O but are `async def`: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop per parameter group per request.
async def event_filter(**given: Any) -> EventFilter:
    """The filter of GET /v1/events' query parameters: one per field of the filter
    (db.filters.EventFilter, its description theirs), and `where`."""
    where = given.get("where")
    parsed_where = _where_filter(where) if where else None
    values = {}
    for name, spec in FILTER_FIELDS.items():
        value = given.get(name)
        parse = _REST_FORMS[spec.kind][2]
        if value == "":
            value = None
        values[name] = parse(name, value) if parse is not None and value is not None else value
    own = filter_of(values)
    return own.combined_with(parsed_where) if parsed_where else own


# what FastAPI reads (and `conflictkb export`'s options: api/export_command.py)
event_filter.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    _FILTER_PARAMETERS, return_annotation=EventFilter)
event_filter.__annotations__ = {p.name: p.annotation for p in _FILTER_PARAMETERS} | {"return": EventFilter}


async def checked_event_filter(request: Request, f: Annotated[EventFilter, Depends(event_filter)]) -> EventFilter:
    """The routes' filter: checked against the limits before any SQL (compile_event_filter
    resolves names), a 422 naming the parameter over one; under, its cost is charged."""
    await charge(request.scope, filter_charge(check_filter(f, LIMITS)))
    return f


async def page_params(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=LIMITS.page_size,
                                description=f"Page size (at most {LIMITS.page_size}).")] = 50,
    # (never empty: a client that sent a null next_cursor back must not be given page one again, for ever)
    cursor: Annotated[str | None, Query(description="Opaque cursor from a previous page's next_cursor.",
                                        json_schema_extra={"minLength": 1})] = None,
    count: Annotated[bool, Query(description="Add the total number of matches.")] = False,
) -> PageRequest:
    # (the most, LIMITS.page_size, is checked by the declaration, which the OpenAPI document shows)
    await charge(request.scope, page_charge(limit))
    return PageRequest(limit=limit, cursor=cursor, count=count)


async def claim_filter(
    claimant: Annotated[list[str], Query(description="Claimant id, name or alias; repeatable.")] = [],
    stance: Annotated[list[Stance], Query(description="asserts, denies, uncertain or concedes; repeatable.")] = [],
    predicate: Annotated[list[str], Query(description="e.g. perpetrator, civilian_fatalities; repeatable.",
                                          json_schema_extra=in_vocabulary("predicates"))] = [],
) -> ClaimFilter:
    check_list_params(claimant=claimant, predicate=predicate)
    return ClaimFilter(claimant=tuple(claimant), stance=tuple(stance), predicate=tuple(predicate))


def check_list_params(q: str | None = None, **lists: list[str]) -> None:
    """The other lists' filters (claims, actors, places), before their SQL: values per
    list filter, and the length of a name search `q`."""
    if q is not None:
        at_most("q", len(q), LIMITS.q_length, "characters")
    for name, values in lists.items():
        at_most(name, len(values), LIMITS.filter_values, "values")


EventFilterDep = Annotated[EventFilter, Depends(checked_event_filter)]
CollapseParam = Annotated[Collapse | None, Query(description=(
    "happening: the matching events folded by happening (records of several sources linked as one): a list "
    "gives each happening's first matching record in its order, totals and stats count happenings (README, "
    "Happenings)."))]
ClaimFilterDep = Annotated[ClaimFilter, Depends(claim_filter)]
PageDep = Annotated[PageRequest, Depends(page_params)]


def sparse_fields(model: type[BaseModel], not_in_lists: frozenset[str] = frozenset()
                  ) -> Callable[..., frozenset[str] | None]:
    """A `fields=a,b,c` parameter for lists of `model`: only those keys (and `id`) per
    item; `not_in_lists` are keys only the detail carries."""
    return fields_parameter(set(model.model_fields) - not_in_lists, always=frozenset({"id"}))


def fields_parameter(allowed: Collection[str], always: frozenset[str]) -> Callable[..., frozenset[str] | None]:
    """A `fields=a,b,c` parameter naming some of `allowed`: those (and `always`), or
    None when it is not given; a name not allowed is a 422 naming it."""
    allowed = set(allowed)
    listed = ", ".join(sorted(allowed))

    async def fields_param(fields: Annotated[str | None, Query(
            description=f"Comma-separated keys to return per item: {listed}.")] = None,
    ) -> frozenset[str] | None:
        if not fields:
            return None
        names = {name.strip() for name in fields.split(",") if name.strip()}
        unknown = sorted(names - allowed)
        if unknown or not names:
            reason = f"unknown field(s) {', '.join(unknown)}" if unknown else "names no field"
            raise Problem(422, f"fields: {reason}; the fields are {listed}",
                          errors=[{"name": "fields", "in": "query", "reason": reason}])
        return frozenset(names | always)

    return fields_param


def _is_sequence(annotation: object) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (Union, UnionType, Annotated):
        return any(_is_sequence(arg) for arg in get_args(annotation))
    return False


def _query_params(dependant: Dependant) -> dict[str, bool]:
    """The route's query parameters, each with whether it may be repeated."""
    params = {p.alias: _is_sequence(p.field_info.annotation) for p in dependant.query_params}
    for sub in dependant.dependencies:
        params |= _query_params(sub)
    return params


async def check_query_params(request: Request) -> None:
    """Parameters FastAPI would let slip: a misspelt filter (`contry=SYR`) or a repeated
    single-valued one (`sort=a&sort=b`) is an error, never silently ignored; text with a
    NUL character (which PostgreSQL cannot store) is refused by name."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    params = getattr(route, "_query_params", None)
    if params is None:
        params = route._query_params = _query_params(route.dependant)
    errors = [{"name": name, "in": "query", "reason": "unknown parameter"}
              for name in sorted(set(request.query_params) - set(params))]
    errors += [{"name": name, "in": "query", "reason": "given more than once; it takes one value"}
               for name, repeatable in sorted(params.items())
               if not repeatable and len(request.query_params.getlist(name)) > 1]
    errors += [{"name": name, "in": where, "reason": "contains a NUL character"}
               for where, items in (("query", request.query_params.multi_items()),
                                    ("path", request.path_params.items()))
               for name, value in items if "\x00" in str(value)]
    if errors:
        detail = "; ".join(f"{e['name']}: {e['reason']}" for e in errors)
        if any(e["reason"] == "unknown parameter" for e in errors):
            detail += f" (this endpoint takes: {', '.join(sorted(params)) or 'no parameters'})"
        raise Problem(422, detail, errors=errors)
