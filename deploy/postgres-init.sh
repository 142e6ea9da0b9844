#!/bin/sh
# Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as the
# superuser: MLflow's own login role, which owns the runs' database and the auth app's users
# and permissions (a database of their own) and nothing else — the server never holds the
# superuser's password. psql's :"name" and :'value' quote what the environment gives.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="$MLFLOW_DB_USER" -v password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE mlflow OWNER :"role";
CREATE DATABASE mlflow_auth OWNER :"role";
SQL
