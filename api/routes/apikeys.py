"""REST: the API key a request carries (keys are made with `conflictkb apikey create`)."""

from fastapi import APIRouter

from api.auth import ReaderKey
from api.responses import JSONResponse
from api.schemas import CallingApiKey

router = APIRouter(prefix="/apikeys", tags=["api keys"])

# Answers about the caller, for the answer cache to leave alone (api/app.py).
PER_CALLER_PATHS = ("/apikeys/me",)


@router.get("/me", response_model=CallingApiKey, response_class=JSONResponse)
async def calling_api_key(key: ReaderKey):
    """The API key this request carries (any role): a script can check its key, and
    which role it has, before it writes."""
    return JSONResponse({"id": str(key.key_id), "name": key.name, "role": key.role},
                        headers={"Cache-Control": "no-store"})
