"""Vendor the pages' libraries into api/static/vendor/, from npm: GraphiQL, its explorer
plugin and React for /graphql; Leaflet, its marker clusters, Chart.js, topojson-client
and Natural Earth's country outlines (world-atlas) for /explore.

Why vendored: the pages must work with no internet, and under a Content-Security-Policy
that names only this server (api/security_headers.py). Why these files: each is a
prebuilt browser (UMD) build as its package publishes it, loaded with no bundler in
between. GraphiQL 4 is the newest major that still publishes one; React 18 is the
newest React with UMD builds (GraphiQL 4 takes React 18 or 19). Leaflet 1.9 rather than
MapLibre GL: points and country outlines need no WebGL, which headless browsers and
old phones may lack, and it is a tenth of the size.

Each package is fetched with `npm pack` (the registry npm is configured with) at a
pinned version, its tarball is checked against the pinned integrity (the registry's
sha512, as package-lock.json files record it), and the files the page loads are copied
with the package's licence to api/static/vendor/<package>/<version>/. The directory is
rebuilt from scratch, and api/static/vendor/manifest.json records each package's
directory and each file's sha256: api/pages.py takes the URLs from it, and
tests/test_pages.py checks the files still match it.

Swagger UI is not here: it comes from a Python package (swagger-ui-bundle-v2).

To update: change a version and its integrity below
(`npm view graphiql@5.0.0 dist.integrity`), run `python scripts/vendor_assets.py`,
then `pytest tests/test_browser.py tests/test_pages.py` and look at /graphql.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "api" / "static" / "vendor"
MANIFEST = VENDOR / "manifest.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str
    # path in the package -> file name in its vendor directory
    files: dict[str, str] = field(default_factory=dict)
    # the package whose licence file is this one's, when its tarball has none
    licence_of: str | None = None
    # the licence's file in the package (written as LICENSE)
    licence_file: str = "LICENSE"

    @property
    def directory(self) -> str:
        """Where its files go under vendor/: `@graphiql/plugin-explorer` -> graphiql-plugin-explorer/4.0.6."""
        return f"{self.name.lstrip('@').replace('/', '-')}/{self.version}"


PACKAGES = [
    Package("react", "18.3.1",
            "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
            {"umd/react.production.min.js": "react.production.min.js"}),
    Package("react-dom", "18.3.1",
            "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
            {"umd/react-dom.production.min.js": "react-dom.production.min.js"}),
    Package("graphiql", "4.1.2",
            "sha512-rNlzQIAzm6i2KBXmVQWBgLvt0TloxFVB2d18bukvdsvjEuFDHsKx5IVOomL1W1o5WW+tE54+ioHb2AEKzO2cUg==",
            {"graphiql.min.js": "graphiql.min.js", "graphiql.min.css": "graphiql.min.css"}),
    # Published without a LICENSE file; it lives in graphql/graphiql (packages/
    # graphiql-plugin-explorer), MIT under that repository's licence, which graphiql ships.
    Package("@graphiql/plugin-explorer", "4.0.6",
            "sha512-TppIi92YPER3v70nlF01KTQrq9AiYqkZicSd1hpU7aqGmbqw/pLwBNLUEcfENBoJtw574Qxjswb01+GaYK0Tzw==",
            {"dist/index.umd.js": "index.umd.js", "dist/style.css": "style.css"}, licence_of="graphiql"),
    # Bundled into the plugin's UMD build: only its licence is needed.
    Package("graphiql-explorer", "0.9.0",
            "sha512-fZC/wsuatqiQDO2otchxriFO0LaWIo/ovF/CQJ1yOudmY0P7pzDiP+l9CEHUiWbizk3e99x6DQG4XG1VxA+d6A=="),
    Package("leaflet", "1.9.4",
            "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==",
            {"dist/leaflet.js": "leaflet.js", "dist/leaflet.css": "leaflet.css"}),
    Package("leaflet.markercluster", "1.5.3",
            "sha512-vPTw/Bndq7eQHjLBVlWpnGeLa3t+3zGiuM7fJwCkiMFq+nmRuG3RI3f7f4N4TDX7T4NpbAXpR2+NTRSEGfCSeA==",
            {"dist/leaflet.markercluster.js": "leaflet.markercluster.js", "dist/MarkerCluster.css": "MarkerCluster.css",
             "dist/MarkerCluster.Default.css": "MarkerCluster.Default.css"}, licence_file="MIT-LICENCE.txt"),
    Package("chart.js", "4.6.1",
            "sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==",
            {"dist/chart.umd.min.js": "chart.umd.min.js"}, licence_file="LICENSE.md"),
    Package("topojson-client", "3.1.0",
            "sha512-605uxS6bcYxGXw9qi62XyrV6Q3xwbndjachmNxu8HWTtVPxZfEJN9fd/SZS1Q54Sn2y0TMyMxFj/cJINqGHrKw==",
            {"dist/topojson-client.min.js": "topojson-client.min.js"}),
    # Natural Earth's admin-0 countries at 1:50m (public domain), as TopoJSON: borders
    # that hold at a province's zoom, 740 KiB (1:110m is too coarse there, 1:10m 3.5 MiB).
    Package("world-atlas", "2.0.2",
            "sha512-IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ==",
            {"countries-50m.json": "countries-50m.json"}),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(package: Package, into: Path) -> tarfile.TarFile:
    """The package's tarball from the registry, refused unless it has the pinned integrity."""
    packed = subprocess.run(["npm", "pack", "--json", "--silent", "--pack-destination", str(into),
                             f"{package.name}@{package.version}"], check=True, capture_output=True, text=True)
    tarball = into / json.loads(packed.stdout)[0]["filename"]
    algorithm, _, expected = package.integrity.partition("-")
    found = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if found != expected:
        sys.exit(f"{package.name}@{package.version}: integrity {algorithm}-{found}, pinned {package.integrity}")
    return tarfile.open(tarball)


def read(tarball: tarfile.TarFile, path: str) -> bytes:
    member = tarball.extractfile(f"package/{path}")
    if member is None:
        raise FileNotFoundError(path)
    return member.read()


def main() -> None:
    if shutil.which("npm") is None:
        sys.exit("npm is needed (Debian: apt-get install npm)")
    shutil.rmtree(VENDOR, ignore_errors=True)
    manifest: dict[str, dict] = {}
    licences: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tarballs = {package.name: fetch(package, Path(tmp)) for package in PACKAGES}
        for package in PACKAGES:
            tarball = tarballs[package.name]
            directory = VENDOR / package.directory
            directory.mkdir(parents=True)
            contents = {name: read(tarball, path) for path, name in package.files.items()}
            licensor = next(p for p in PACKAGES if p.name == (package.licence_of or package.name))
            licences[package.name] = read(tarballs[licensor.name], licensor.licence_file)
            contents["LICENSE"] = licences[package.name]
            for name, data in contents.items():
                (directory / name).write_bytes(data)
            manifest[package.name] = {"version": package.version, "integrity": package.integrity,
                                      "directory": package.directory,
                                      "files": {name: sha256(data) for name, data in sorted(contents.items())}}
            sizes = ", ".join(f"{name} {len(data) / 1024:.0f} KiB" for name, data in contents.items())
            print(f"{package.name}@{package.version}: {sizes}")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
