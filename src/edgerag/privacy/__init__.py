"""Privacy: PII scrubbing at ingest (``pii``, ``scrub``) and erasure records (``erasure``)."""
