"""REST: claims, actors, places, documents and the vocabularies."""

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from api.deps import AnswerCacheDep, Codec, ReadConn
from api.errors import absent
from api.params import ClaimFilterDep, PageDep, check_list_params, sparse_fields
from api.responses import JSONResponse, page_response
from api.schemas import Actor, Claim, Document, ListOf, Place, Vocabularies, listed
from db.queries import actors, claims, documents, places, vocabulary
from db.queries.vocabulary import in_vocabulary

router = APIRouter()

ClaimFields = Annotated[frozenset[str] | None, Depends(sparse_fields(Claim))]
ActorFields = Annotated[frozenset[str] | None, Depends(sparse_fields(Actor))]
PlaceFields = Annotated[frozenset[str] | None, Depends(sparse_fields(Place))]
DocumentFields = Annotated[frozenset[str] | None, Depends(sparse_fields(Document))]


async def _found(conn: AsyncConnection, tree: dict | None, what: str, ref: str) -> JSONResponse:
    if tree is None:
        raise await absent(conn, what, ref)
    return JSONResponse(tree)


@router.get("/claims", tags=["claims"], response_model=ListOf[listed(Claim)], response_class=JSONResponse)
async def list_claims(
    request: Request, page: PageDep, where: ClaimFilterDep, conn: ReadConn, codec: Codec, cache: AnswerCacheDep, fields: ClaimFields,
    event: Annotated[str | None, Query(description="Event id or external id.")] = None,
):
    """Claims across events: who said what, where, in their own words."""
    where = replace(where, event=event)
    return page_response(request, await claims.list_claims(conn, page, codec, cache, where), fields)


@router.get("/claims/{claim_id}", tags=["claims"], response_model=Claim, response_class=JSONResponse)
async def get_claim(claim_id: str, conn: ReadConn):
    return await _found(conn, await claims.get_claim(conn, claim_id), "claim", claim_id)


@router.get("/actors", tags=["actors"], response_model=ListOf[listed(Actor)], response_class=JSONResponse)
async def list_actors(
    request: Request, page: PageDep, conn: ReadConn, codec: Codec, cache: AnswerCacheDep, fields: ActorFields,
    q: Annotated[str | None, Query(description="Part of a name or alias, any case or accent.")] = None,
    kind: Annotated[list[str], Query(description="Actor kind (see /v1/vocabularies); repeatable.",
                                     json_schema_extra=in_vocabulary("actor_kinds"))] = [],
):
    """Actors by name: states, forces, armed groups, and the sources that speak about events."""
    check_list_params(q, kind=kind)
    return page_response(request, await actors.list_actors(conn, page, codec, cache, q=q, kind=tuple(kind)), fields)


@router.get("/actors/{actor_id}", tags=["actors"], response_model=Actor, response_class=JSONResponse)
async def get_actor(actor_id: str, conn: ReadConn):
    return await _found(conn, await actors.get_actor(conn, actor_id), "actor", actor_id)


@router.get("/places", tags=["places"], response_model=ListOf[listed(Place)], response_class=JSONResponse)
async def list_places(
    request: Request, page: PageDep, conn: ReadConn, codec: Codec, cache: AnswerCacheDep, fields: PlaceFields,
    q: Annotated[str | None, Query(description="Part of a name, alias or spelling.")] = None,
    kind: Annotated[list[Literal["country", "admin1", "admin2", "area", "locality"]], Query()] = [],
    parent: Annotated[str | None, Query(description="Only the direct children of this place id.")] = None,
):
    """Places of the country > admin1 > admin2 > locality hierarchy."""
    check_list_params(q, kind=kind)
    return page_response(request, await places.list_places(conn, page, codec, cache, q=q, kind=tuple(kind),
                                                           parent=parent), fields)


@router.get("/places/{place_id}", tags=["places"], response_model=Place, response_class=JSONResponse)
async def get_place(place_id: str, conn: ReadConn):
    return await _found(conn, await places.get_place(conn, place_id), "place", place_id)


@router.get("/documents", tags=["documents"], response_model=ListOf[listed(Document)], response_class=JSONResponse)
async def list_documents(request: Request, page: PageDep, conn: ReadConn, codec: Codec, cache: AnswerCacheDep, fields: DocumentFields):
    """Published reports that claims come from, newest first."""
    return page_response(request, await documents.list_documents(conn, page, codec, cache), fields)


@router.get("/documents/{document_id}", tags=["documents"], response_model=Document, response_class=JSONResponse)
async def get_document(document_id: str, conn: ReadConn):
    return await _found(conn, await documents.get_document(conn, document_id), "document", document_id)


@router.get("/vocabularies", tags=["vocabularies"], response_model=Vocabularies, response_class=JSONResponse)
async def get_vocabularies(conn: ReadConn):
    """The ACLED taxonomy, precisions, kinds, predicates, stances and datasets the API accepts."""
    return JSONResponse(await vocabulary.vocabularies(conn))
