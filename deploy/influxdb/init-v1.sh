#!/bin/sh
# Run once by the influxdb:2 image after its first-start setup (docker-entrypoint-initdb.d), with
# the DOCKER_INFLUXDB_INIT_* variables of compose.yaml set. Makes InfluxDB 2.x speak luxtel's v1
# API: the database `lighting` mapped to the bucket, and v1-compatibility users for luxtel (write
# and read) and Grafana (read only), their passwords from the compose secrets.
set -eu

# Map v1 database "lighting", retention policy "autogen" to the bucket made by the setup.
influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --db lighting --rp autogen --default \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}"

# luxtel writes and reads (it checks the database at start-up).
influx v1 auth create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --username luxtel \
  --password "$(cat /run/secrets/influx_luxtel_password)" \
  --write-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --read-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}"

# Grafana only reads.
influx v1 auth create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --username grafana \
  --password "$(cat /run/secrets/influx_grafana_password)" \
  --read-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}"
