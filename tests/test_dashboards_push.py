"""`luxtel dashboards push` against a local HTTP server that answers like Grafana's HTTP API and
checks each request: path, method, bearer token, and the body of folder, data source and
dashboard creation. (No live Grafana was available to test against.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner

from dashboards.build import build_dashboards
from dashboards.push import PushError, push_dashboards
from dashboards.sdk import INFLUX_UID, PROMETHEUS_UID
from luxtel.commands.dashboards import dashboards_app
from servers import free_port

TOKEN = "glsa_test_token_0123456789"


@dataclass
class FakeGrafana:
    """Grafana's API as far as a push uses it; records what it was sent."""

    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        @web.middleware
        async def auth(
            request: web.Request, handler: Any
        ) -> web.StreamResponse:  # checks every request
            self.requests.append((request.method, request.path))
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return web.json_response({"message": "Unauthorized"}, status=401)
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[auth])
        app.router.add_get("/api/folders/{uid}", self.get_folder)
        app.router.add_post("/api/folders", self.create_folder)
        app.router.add_get("/api/datasources/uid/{uid}", self.get_datasource)
        app.router.add_post("/api/datasources", self.create_datasource)
        app.router.add_post("/api/dashboards/db", self.save_dashboard)
        return app

    async def get_folder(self, request: web.Request) -> web.Response:
        folder = self.folders.get(request.match_info["uid"])
        if folder is None:
            return web.json_response({"message": "folder not found"}, status=404)
        return web.json_response(folder)

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert set(body) <= {"uid", "title", "parentUid"}
        assert body["title"]
        self.folders[body["uid"]] = {"id": len(self.folders) + 1, **body}
        return web.json_response(self.folders[body["uid"]])

    async def get_datasource(self, request: web.Request) -> web.Response:
        found = self.datasources.get(request.match_info["uid"])
        if found is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        return web.json_response(found)

    async def create_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert {"name", "type", "access", "uid"} <= set(body)
        self.datasources[body["uid"]] = body
        return web.json_response({"datasource": body, "id": 1, "message": "Datasource added"})

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert set(body) <= {"dashboard", "folderUid", "folderId", "overwrite", "message"}
        dashboard = body["dashboard"]
        assert dashboard["uid"]
        assert dashboard["title"]
        assert dashboard["id"] is None
        assert body["folderUid"] in self.folders, "dashboard pushed before its folder exists"
        assert body["overwrite"] is True
        self.dashboards[dashboard["uid"]] = body
        uid = dashboard["uid"]
        return web.json_response(
            {"id": 1, "uid": uid, "url": f"/d/{uid}", "status": "success", "version": 1}
        )


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    port = free_port("127.0.0.1")
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(fake.app())
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fake-grafana", daemon=True)
    thread.start()
    assert ready.wait(10)
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_push_creates_folder_and_datasources_then_dashboards(grafana: FakeGrafana) -> None:
    models = build_dashboards()
    result = push_dashboards(grafana.url, TOKEN, models)
    assert result.folder_created
    assert result.datasources_created == [INFLUX_UID, PROMETHEUS_UID]
    assert sorted(grafana.dashboards) == sorted(m["uid"] for m in models.values())
    assert grafana.datasources[INFLUX_UID]["jsonData"]["version"] == "InfluxQL"
    assert grafana.datasources[INFLUX_UID]["jsonData"]["dbName"] == "lighting"
    assert grafana.requests[:2] == [("GET", "/api/folders/luxtel"), ("POST", "/api/folders")]

    grafana.requests.clear()
    again = push_dashboards(grafana.url, TOKEN, models)
    assert not again.folder_created
    assert again.datasources_created == []
    assert ("POST", "/api/datasources") not in grafana.requests
    assert len(grafana.dashboards) == len(models)


def test_existing_datasource_is_left_alone(grafana: FakeGrafana) -> None:
    grafana.datasources[INFLUX_UID] = {"uid": INFLUX_UID, "url": "http://elsewhere:8086"}
    push_dashboards(grafana.url, TOKEN, build_dashboards())
    assert grafana.datasources[INFLUX_UID]["url"] == "http://elsewhere:8086"


def test_a_refused_token_is_one_sentence_without_the_token(grafana: FakeGrafana) -> None:
    with pytest.raises(PushError, match="refused the token") as raised:
        push_dashboards(grafana.url, "wrong", build_dashboards())
    assert "wrong" not in str(raised.value)


def test_push_command_takes_the_token_from_the_environment(grafana: FakeGrafana) -> None:
    runner = CliRunner()
    result = runner.invoke(
        dashboards_app, ["push", "--url", grafana.url], env={"GRAFANA_TOKEN": TOKEN}
    )
    assert result.exit_code == 0, result.output
    assert "pushed dashboard luxtel-city" in result.output
    assert TOKEN not in result.output
    refused = runner.invoke(
        dashboards_app, ["push", "--url", grafana.url], env={"GRAFANA_TOKEN": "nope-secret"}
    )
    assert refused.exit_code == 1
    assert "nope-secret" not in refused.output
