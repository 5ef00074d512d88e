"""Entity tags: a hash of the answer's body, so a tag changes exactly when the answer does.

XXH3 (128 bits): 0.1 ms for a 3 MB answer, where BLAKE2b took 4. Tags are weak (`W/`):
the same answer gzipped or not is the same representation. A write's `If-Match` is
compared with the tag of the record's current answer the same way (ignoring `W/`), so
a client sends back the ETag its GET gave it.
"""

from __future__ import annotations

import xxhash


def body_etag(body: bytes) -> str:
    return 'W/"' + xxhash.xxh3_128_hexdigest(body) + '"'


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match header names this tag (`*` names any)."""
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))
