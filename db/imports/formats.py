"""The file formats `conflictkb import` knows, by the name used on the command line,
and the dataset files in seeds/ that load with the seed."""

from pathlib import Path

from db.imports.acled import ACLED_FORMAT
from db.imports.records import Format
from db.imports.ucdp import UCDP_FORMAT

BY_NAME: dict[str, Format] = {"ucdp": UCDP_FORMAT, "acled": ACLED_FORMAT}


def seed_dataset_files(seeds_dir: Path) -> list[tuple[Path, Format]]:
    """seeds/<dataset>-*.csv[.gz] files, by the dataset their name starts with."""
    found = []
    for path in sorted(seeds_dir.glob("*.csv*")):
        for file_format in BY_NAME.values():
            if path.name.startswith(file_format.dataset):
                found.append((path, file_format))
    return found
