"""bench/linking_eval.py's labelled set (no database): the same seed gives the same
ACLED file, so figures before and after a change of the matcher compare; every row
is one the ACLED importer takes."""

from __future__ import annotations

from collections import Counter

from bench.linking_eval import KINDS, make_labelled_set, read_crosswalk, read_extract, write_acled_csv
from db.imports.acled import parse_acled_row


def test_the_same_seed_writes_the_same_file_and_every_row_imports(tmp_path):
    extract, crosswalk = read_extract(), read_crosswalk()
    labels, rows = make_labelled_set(extract, crosswalk, 180, seed=14)
    again_labels, again_rows = make_labelled_set(extract, crosswalk, 180, seed=14)
    write_acled_csv(tmp_path / "first.csv", rows)
    write_acled_csv(tmp_path / "again.csv", again_rows)
    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()
    assert labels == again_labels

    other_labels, _ = make_labelled_set(extract, crosswalk, 180, seed=15)
    assert {label.ucdp_id for label in other_labels} != {label.ucdp_id for label in labels}

    # every kind, in equal shares; each record re-reports another extract event
    assert Counter(label.kind for label in labels) == {kind: 20 for kind in KINDS}
    assert len({label.ucdp_id for label in labels}) == 180
    assert [label.acled_id for label in labels] == [f"EVAL{n}" for n in range(1, 181)]
    for line, row in enumerate(rows, start=2):
        event = parse_acled_row({k: str(v) for k, v in row.items()}, line)
        assert event.external_id == row["event_id_cnty"]
