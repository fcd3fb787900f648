"""Telling crews: routing, grouping, templates and the receivers (Apprise, Alertmanager)."""
