"""Archive -> store (`radadapt ingest`, docs/ingest.md; the store format is docs/store_format.md).

walk (archive entries, content-defined chunks) -> chunk (one chunk in a worker: dicomio reading and codec check,
select by header, pixels pipeline, select by image, deid record) -> pool (workers, progress) -> merge (dedupe,
reports pairing and scrubbing, splits, manifest, files, private audit) with extsort; writer and audit write;
pipeline ties them together. Nothing here imports labels, train, bench or report.
"""
