#!/usr/bin/env bash
# Writes the passwords docker-compose.yml mounts as secrets into
# deploy/secrets/ (never committed), one random password each, without
# overwriting any that exist: run again after an upgrade, it adds only what
# is missing (such as Grafana's admin password). The Kubernetes manifests
# take the same files (deploy/README.md: `kubectl create secret`). The
# folder is mode 700, so nobody else on this machine reaches the files; the
# files themselves are 644, because a compose secret is mounted with the
# file's own mode and owner and must be readable by the container's user
# (postgres, rabbitmq, agora, grafana).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
umask 022
new_password() { head -c 24 /dev/urandom | base64 | tr -d '/+=\n'; }
for name in postgres rabbitmq catalog_db inventory_db cart_db order_db payment_db shipping_db notification_db identity_db \
            grafana_admin; do
  file="secrets/${name}_password"
  [ -s "$file" ] || new_password > "$file"
done
if [ ! -s secrets/rabbitmq.conf ]; then
  printf 'default_user = agora\ndefault_pass = %s\n' \
    "$(cat secrets/rabbitmq_password)" > secrets/rabbitmq.conf
fi
echo "secrets in $(pwd)/secrets"
