#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory: one role and
# one database per service. Each role owns its database and nothing else;
# CONNECT is revoked from PUBLIC on every database, so a service's role can
# reach its own database only. Passwords come from the Docker secrets
# /run/secrets/<service>_db_password (SECRETS_DIR elsewhere).
set -euo pipefail
SECRETS_DIR=${SECRETS_DIR:-/run/secrets}
SERVICES=(catalog inventory cart order payment shipping notification identity)
psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres)
for db in postgres template1; do
  "${psql[@]}" -c "REVOKE CONNECT ON DATABASE $db FROM PUBLIC;"
done
for s in "${SERVICES[@]}"; do
  password=$(tr -d '\n' < "$SECRETS_DIR/${s}_db_password")
  "${psql[@]}" -v role="agora_$s" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
SQL
  "${psql[@]}" -c "CREATE DATABASE agora_$s OWNER agora_$s;"
  "${psql[@]}" -c "REVOKE CONNECT ON DATABASE agora_$s FROM PUBLIC;"
  "${psql[@]}" -c "GRANT CONNECT ON DATABASE agora_$s TO agora_$s;"
done
