"""What grafana-foundation-sdk lacks for luxtel: InfluxQL queries and InfluxDB annotations.

The SDK (Grafana's own builders, generated from its schemas) ships query types for Prometheus,
Loki, TestData and others but none for InfluxDB. Grafana's InfluxDB data source stores an InfluxQL
query in raw mode as ``{"refId", "query", "rawQuery": true, "resultFormat"}``; the classes here
produce exactly that and plug into the SDK's panel builders like its own query builders do.

Also the data source references every dashboard uses, one place for their uids and types.
"""

from __future__ import annotations

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

INFLUX_UID = "luxtel-influxdb"
PROMETHEUS_UID = "luxtel-prometheus"

INFLUX = dashboard.DataSourceRef(type_val="influxdb", uid=INFLUX_UID)
PROMETHEUS = dashboard.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)

ResultFormat = Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target of a panel."""

    def __init__(
        self,
        query: str = "",
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": INFLUX,
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder for `InfluxQLQuery`, in the SDK's fluent style."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> Self:
        """Rows rather than series: one row per group, for stats over devices and joins."""
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        """Series name; Grafana expands `$tag_zone` and the like in it."""
        self._internal.alias = alias
        return self


class InfluxAnnotationTarget(dashboard.AnnotationTarget):
    """An InfluxDB annotation query: each row of the InfluxQL result is one annotation.

    Grafana's InfluxDB data source reads the query and the columns that make an annotation's text
    and tags from the annotation's target (it migrates older dashboards to this shape).
    """

    def __init__(self, query: str, text_column: str, tags_column: str) -> None:
        super().__init__(limit=100, match_any=False, tags=[], type_val="tags")
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            {
                "fromAnnotations": True,
                "query": self.query,
                "rawQuery": True,
                "refId": "Anno",
                "resultFormat": "table",
                "tagsColumn": self.tags_column,
                "textColumn": self.text_column,
            }
        )
        return payload


class InfluxAnnotation(cogbuilder.Builder[dashboard.AnnotationTarget]):
    """Builder for `InfluxAnnotationTarget`, for `AnnotationQuery.target()`."""

    def __init__(self, query: str, text_column: str, tags_column: str) -> None:
        self._internal = InfluxAnnotationTarget(query, text_column, tags_column)

    def build(self) -> dashboard.AnnotationTarget:
        return self._internal
