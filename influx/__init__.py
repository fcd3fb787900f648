"""A client of InfluxDB's v1-compatible HTTP API (1.x natively, 2.x and 3.x through their
v1 endpoints): writes in line protocol, InfluxQL queries, and the errors they raise. A shared
part: ingest, rules and energy use it; it knows nothing of them."""
