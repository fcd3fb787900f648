"""Upload the dashboards to a running Grafana through its HTTP API (grafana-client).

What it does, in order, each step idempotent:
1. `GET /api/folders/{uid}`; when 404, `POST /api/folders` with the folder's uid and title;
2. for each data source the dashboards use (InfluxDB, Prometheus),
   `GET /api/datasources/uid/{uid}`; when 404, `POST /api/datasources` — an existing data source
   is never changed (an operator may have pointed it elsewhere);
3. `POST /api/dashboards/db` for each dashboard, `{"dashboard", "folderUid", "overwrite": true,
   "message"}`: a dashboard of the same uid is replaced.

The token goes in `Authorization: Bearer …` (a Grafana service-account token) and is never logged
nor printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError
from niquests.exceptions import RequestException

from dashboards.sdk import INFLUX_UID, PROMETHEUS_UID

FOLDER_UID = "luxtel"
FOLDER_TITLE = "luxtel"
_NOT_FOUND = 404


class PushError(Exception):
    """The push failed: one sentence for the operator (never containing the token)."""


@dataclass(frozen=True, slots=True)
class DatasourceTargets:
    """Where the data sources created by a push point (used only when they are missing)."""

    influx_url: str = "http://influxdb:8086"
    influx_database: str = "lighting"
    influx_token: str | None = None
    """InfluxDB 2.x/3.x v1-compatibility token, sent as `Authorization: Token …`."""
    prometheus_url: str = "http://prometheus:9090"


@dataclass(slots=True)
class PushResult:
    folder_created: bool = False
    datasources_created: list[str] = field(default_factory=list)
    dashboards: list[str] = field(default_factory=list)


def datasource_bodies(targets: DatasourceTargets) -> list[dict[str, Any]]:
    """The `POST /api/datasources` bodies, the same data sources provisioning creates."""
    influx: dict[str, Any] = {
        "uid": INFLUX_UID,
        "name": "luxtel InfluxDB",
        "type": "influxdb",
        "access": "proxy",
        "url": targets.influx_url,
        "jsonData": {"dbName": targets.influx_database, "httpMode": "POST", "version": "InfluxQL"},
    }
    if targets.influx_token:
        influx["jsonData"]["httpHeaderName1"] = "Authorization"
        influx["secureJsonData"] = {"httpHeaderValue1": f"Token {targets.influx_token}"}
    return [
        influx,
        {
            "uid": PROMETHEUS_UID,
            "name": "luxtel Prometheus",
            "type": "prometheus",
            "access": "proxy",
            "url": targets.prometheus_url,
            "jsonData": {"httpMethod": "POST"},
        },
    ]


def _exists(call: Any, *args: str) -> bool:
    try:
        call(*args)
    except GrafanaClientError as error:
        if error.status_code == _NOT_FOUND:
            return False
        raise
    return True


def push_dashboards(
    url: str,
    token: str,
    dashboards: dict[str, dict[str, Any]],
    targets: DatasourceTargets | None = None,
    timeout_s: float = 10.0,
) -> PushResult:
    """Create what is missing and upload `dashboards` (file name → model) to Grafana at `url`."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    result = PushResult()
    try:
        if not _exists(api.folder.get_folder, FOLDER_UID):
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            result.folder_created = True
        for body in datasource_bodies(targets or DatasourceTargets()):
            if not _exists(api.datasource.get_datasource_by_uid, body["uid"]):
                api.datasource.create_datasource(body)
                result.datasources_created.append(body["uid"])
        for name, model in dashboards.items():
            api.dashboard.update_dashboard(
                {
                    "dashboard": {**model, "id": None},
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": f"luxtel dashboards push ({name})",
                }
            )
            result.dashboards.append(str(model["uid"]))
    except GrafanaUnauthorizedError:
        raise PushError(f"Grafana at {url} refused the token (401)") from None
    except GrafanaException as error:
        raise PushError(f"Grafana at {url} answered: {error}") from None
    except RequestException as error:
        raise PushError(f"cannot reach Grafana at {url}: {type(error).__name__}") from None
    return result
