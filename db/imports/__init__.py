"""Importers of other datasets' files (UCDP GED, ACLED) into the knowledge base.

A file is read as a stream of rows (`source_file`), each row turned by its dataset's
mapper (`ucdp`, `acled`) into an `ImportedEvent`, or rejected with its line number and
the reason. Accepted events are loaded in batches by `loader`: places and actors are
matched to what the knowledge base has (by external id, then by name and alias), the
rest goes in by COPY and set-based upserts, and each batch's figures are derived from
its claims by db/derive.py like any other write. Re-importing a file updates in place
and adds nothing.
"""
