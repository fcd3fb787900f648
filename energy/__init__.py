"""The energy auditor's reports and time-series exports (``luxtel energy report``, ``luxtel
export``).

Pure core: ``counters`` (intervals from cumulative counters), ``integrate`` (energy from power),
``completeness``, ``periods`` (day, month and half-hour edges), ``report`` (the rows),
``rollup`` (hourly rollups: device-hour tallies, their points, which hours a report may read from
them). Shell: ``queries`` and ``source`` (InfluxQL from validated identifiers, streamed),
``rollup_store`` (build rollups), ``rollup_reader`` (read a report from them, with
``rollup_sums``, ``rollup_edge_reads`` and ``rollup_raw``), ``retention`` (retention policies),
``upkeep`` (the rollup task of ``luxtel run``), ``export``, ``output``, ``plot``, ``settlement``
and ``command`` (the typer commands).
"""
