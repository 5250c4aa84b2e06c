"""``cable-ingest serve``: the HTTP face (intake for feeds, reads, probes) on Starlette/uvicorn.

:func:`~worker.http.app.create_http_app` makes the ASGI app from explicit settings; modules:
``app`` (factory, routes, lifespan), ``auth`` (bearer tokens, scopes, clearance), ``body``
(bounded reading), ``inputs`` (media types to inputs), ``ingest`` (POST, the door, idempotency),
``intake`` (the queue and group commit), ``reads`` (receipts, records, search, cited-by),
``operate`` (the operator's dead letters and status), ``observe`` (probes and metrics),
``metrics`` (HTTP metrics), ``problems`` (RFC 9457), ``openapi`` and ``documents`` (the
OpenAPI document and its schemas), ``server`` (uvicorn's protocol with read deadlines).
"""
