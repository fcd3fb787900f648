"""The energy auditor's reports and time-series exports (``luxtel energy report``, ``luxtel
export``).

Pure core: ``counters`` (intervals from cumulative counters), ``integrate`` (energy from power),
``completeness``, ``periods`` (day, month and half-hour edges), ``report`` (the rows). Shell:
``queries`` and ``source`` (InfluxQL from validated identifiers, streamed), ``export``,
``output``, ``plot``, ``settlement`` and ``command`` (the typer commands).
"""
