#!/usr/bin/env bash
# A real Flightctl v1.2.0 service on 127.0.0.1 for tests and the demo:
# PostgreSQL, Redis, flightctl-api (user API + mTLS agent endpoint),
# flightctl-worker and flightctl-periodic, authenticating users through a
# small OIDC issuer of our own (hack/oidc-issuer).
#
# Usage: hack/real-flightctl.sh up|down|env|status
#   up      build what is missing (hack/build-flightctl.sh, cached per user),
#           install postgresql/redis-server from Debian if missing (as root),
#           start everything and wait until the API answers an authenticated
#           request. Idempotent: a running service is left as it is.
#   down    stop every process `up` started; no listener is left behind.
#   env     print FLIGHTCTL_URL, FLIGHTCTL_TOKEN (a fresh token), FLIGHTCTL_CA
#           and FLIGHTCTL_AGENT_ENDPOINT as shell exports, and the issuer's
#           URL, client id and client secret file (FLIGHTCTL_OIDC_*; its token
#           endpoint issues $REAL_OIDC_ACCESS_TTL tokens, default 10s):
#             eval "$(hack/real-flightctl.sh env)"
#   status  say what is running.
#   pids    print "<name> <pid>" per running process (postgres: the
#           postmaster), for the bench's server CPU readings.
#
# State (database, certificates, config, logs, pids) lives in
# $REAL_FLIGHTCTL_DIR (default .local/real-flightctl). `down --purge` also
# deletes it, so the next `up` starts from an empty database.
#
# Everything listens on 127.0.0.1 only. Flightctl's processes also start
# gorm's Prometheus exporter on ":15691" (all interfaces, not
# configurable); the issuer holds 127.0.0.1:15691 first, so that bind
# fails and Flightctl only logs it. `up` then checks that no process it
# started listens on anything but loopback, and fails if one does.
#
# Ports (override with the variables): API 13443, agent endpoint 17443,
# PostgreSQL 15432, Redis 16379, OIDC issuer 18090. They differ from
# Flightctl's defaults (3443/7443) so that `make sim` can run beside it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLIGHTCTL_VERSION="${FLIGHTCTL_VERSION:-v1.2.0}"
STATE="${REAL_FLIGHTCTL_DIR:-$ROOT/.local/real-flightctl}"
API_PORT="${REAL_FLIGHTCTL_API_PORT:-13443}"
AGENT_PORT="${REAL_FLIGHTCTL_AGENT_PORT:-17443}"
PG_PORT="${REAL_FLIGHTCTL_PG_PORT:-15432}"
REDIS_PORT="${REAL_FLIGHTCTL_REDIS_PORT:-16379}"
ISSUER_PORT="${REAL_FLIGHTCTL_ISSUER_PORT:-18090}"
GORM_PORT=15691
HOST=127.0.0.1

MODDIR="" # Flightctl's module in the module cache (scripts used in place)
BIN="$STATE/bin"
PIDS="$STATE/pids"
LOGS="$STATE/logs"
FHOME="$STATE/home" # HOME of the Flightctl processes: ~/.flightctl/config.yaml
PKI="$STATE/pki"
# PostgreSQL runs as the postgres user when we are root, and that user may
# not be able to reach $STATE (a clone under a 0700 directory, e.g. from
# mktemp -d): its data and socket then live in a directory of their own
# under /tmp, named after $STATE so that every command finds them again.
PG_ROOT="$STATE"
if [ "$(id -u)" = 0 ]; then
  PG_ROOT="/tmp/vk-flightctl-pg-$(printf %s "$STATE" | sha256sum | cut -c1-12)"
fi
PGDATA="$PG_ROOT/postgres"
PGSOCK="$PG_ROOT/pgsock"
ISSUER_URL="http://$HOST:$ISSUER_PORT"
# Lifetime of tokens the issuer's token endpoint hands out (client
# credentials and refresh grants, as vk-flightctl's refreshing credentials
# ask for); short, so tests see many expiries. Minted tokens (env) differ.
OIDC_ACCESS_TTL="${REAL_OIDC_ACCESS_TTL:-10s}"
API_URL="https://$HOST:$API_PORT"
AGENT_URL="https://$HOST:$AGENT_PORT"

log() { printf '[real-flightctl %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- helpers

pid_alive() { # name
  local f="$PIDS/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start NAME LOGFILE CMD...: runs CMD in its own session, detached from this
# shell, recording its pid. HOME points at the Flightctl state so that
# Flightctl's processes read $HOME/.flightctl/config.yaml.
start_proc() {
  local name="$1" logf="$2"
  shift 2
  if pid_alive "$name"; then log "$name already running (pid $(cat "$PIDS/$name.pid"))"; return; fi
  HOME="$FHOME" setsid "$@" >>"$logf" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  log "started $name (pid $!, log ${logf#"$ROOT"/})"
}

stop_proc() { # name
  local f="$PIDS/$1.pid"
  [ -f "$f" ] || return 0
  local pid
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "$1 (pid $pid) ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

port_listening() { # port
  ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

wait_port() { # port name seconds
  local i
  for i in $(seq 1 $(($3 * 5))); do
    port_listening "$1" && return 0
    sleep 0.2
  done
  return 1
}

# as_pg CMD...: PostgreSQL refuses to run as root; run it as the postgres
# user then (the Debian package creates it), else as ourselves.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() { # tool
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/$1" ] && { echo "$d/$1"; return; }
  done
  command -v "$1" || return 1
}

secret() { # name: a random secret kept in the state directory
  local f="$STATE/secrets/$1"
  if [ ! -s "$f" ]; then
    mkdir -p "$STATE/secrets"
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$f")
  fi
  cat "$f"
}

module_dir() {
  [ -n "$MODDIR" ] && return
  MODDIR="$(GOFLAGS=-mod=mod go mod download -json "github.com/flightctl/flightctl@$FLIGHTCTL_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [ -d "$MODDIR" ] || die "github.com/flightctl/flightctl@$FLIGHTCTL_VERSION is not in the module cache"
}

# ---------------------------------------------------------------- up steps

ensure_packages() {
  local missing=()
  pg_bin initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v envsubst >/dev/null 2>&1 || missing+=(gettext-base)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v ss >/dev/null 2>&1 || missing+=(iproute2)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages: ${missing[*]}. Install them as root: apt-get update && apt-get install -y ${missing[*]}"
  fi
  log "installing ${missing[*]} from Debian (apt-get update once, then install)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start system-wide services on the default ports;
  # this service does not use them, and they must not stay listening.
  for svc in redis-server postgresql; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" || true
    elif command -v service >/dev/null 2>&1; then
      service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
}

build_all() {
  local cache
  cache="$("$ROOT/hack/build-flightctl.sh")"
  mkdir -p "$BIN"
  for c in flightctl-api flightctl-worker flightctl-periodic flightctl-db-migrate flightctl-agent flightctl; do
    ln -sf "$cache/$c" "$BIN/$c"
  done
  log "building hack/oidc-issuer"
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$BIN/oidc-issuer" ./hack/oidc-issuer)
}

start_issuer() {
  if pid_alive oidc-issuer; then return; fi
  port_listening "$GORM_PORT" && die "127.0.0.1:$GORM_PORT (gorm's exporter port) is already taken by another process; stop it first (ss -ltnp 'sport = :$GORM_PORT')"
  start_proc oidc-issuer "$LOGS/oidc-issuer.log" "$BIN/oidc-issuer" serve \
    --listen "$HOST:$ISSUER_PORT" --key "$STATE/secrets/oidc-key.pem" \
    --client-secret-file "$STATE/secrets/oidc-client" --access-ttl "$OIDC_ACCESS_TTL" --hold "$HOST:$GORM_PORT"
  wait_port "$ISSUER_PORT" issuer 10 || die "the OIDC issuer did not start: $(tail -5 "$LOGS/oidc-issuer.log")"
}

start_postgres() {
  local initdb pgctl
  initdb="$(pg_bin initdb)"; pgctl="$(pg_bin pg_ctl)"
  mkdir -p "$PG_ROOT" "$PGSOCK"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PGSOCK"; fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    log "initdb $PGDATA"
    mkdir -p "$PGDATA"
    [ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
    local pwfile="$PGSOCK/.pw"
    secret pg-admin >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
    as_pg "$initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >"$LOGS/initdb.log" 2>&1 ||
      die "initdb failed: $(tail -5 "$LOGS/initdb.log")"
    rm -f "$pwfile"
  fi
  if as_pg "$pgctl" -D "$PGDATA" status >/dev/null 2>&1; then return; fi
  touch "$PG_ROOT/postgres.log"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_ROOT/postgres.log"
  as_pg "$pgctl" -D "$PGDATA" -l "$PG_ROOT/postgres.log" -w -t 60 \
    -o "-c listen_addresses=$HOST -p $PG_PORT -k $PGSOCK" start >/dev/null ||
    die "PostgreSQL did not start: $(tail -5 "$PG_ROOT/postgres.log")"
  log "PostgreSQL on $HOST:$PG_PORT"
}

psql_admin() { # args...
  as_pg "$(pg_bin psql)" -h "$PGSOCK" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q "$@"
}

setup_database() {
  [ -f "$STATE/.db-ready" ] && return
  module_dir
  log "creating database flightctl and its users ($MODDIR/deploy/scripts/setup_database_users.sql)"
  psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='flightctl'" | grep -q 1 ||
    psql_admin -d postgres -c "CREATE DATABASE flightctl"
  local sql="$PGSOCK/setup.sql"
  DB_NAME=flightctl DB_MIGRATION_USER=flightctl_migrator DB_MIGRATION_PASSWORD="$(secret db-migrator)" \
    DB_APP_USER=flightctl_app DB_APP_PASSWORD="$(secret db-app)" \
    envsubst <"$MODDIR/deploy/scripts/setup_database_users.sql" >"$sql"
  chmod 0644 "$sql"
  psql_admin -d flightctl -f "$sql" >"$LOGS/setup-db.log" 2>&1 || { rm -f "$sql"; die "database setup failed: $(tail -5 "$LOGS/setup-db.log")"; }
  rm -f "$sql"
  touch "$STATE/.db-ready"
}

start_redis() {
  if pid_alive redis; then return; fi
  mkdir -p "$STATE/redis"
  # The password goes through a config file, not the command line (ps).
  (umask 077 && printf 'bind %s\nport %s\nrequirepass %s\ndir %s\nsave ""\nappendonly no\nprotected-mode yes\n' \
    "$HOST" "$REDIS_PORT" "$(secret redis)" "$STATE/redis" >"$STATE/redis/redis.conf")
  start_proc redis "$LOGS/redis.log" redis-server "$STATE/redis/redis.conf"
  wait_port "$REDIS_PORT" redis 10 || die "Redis did not start: $(tail -5 "$LOGS/redis.log")"
}

make_certs() {
  [ -f "$PKI/flightctl-api/server.crt" ] && [ -f "$FHOME/.flightctl/certs/ca-bundle.crt" ] && return
  module_dir
  log "generating certificates ($MODDIR/deploy/helm/flightctl/scripts/generate-certificates.sh)"
  bash "$MODDIR/deploy/helm/flightctl/scripts/generate-certificates.sh" --cert-dir "$PKI" \
    --api-san localhost --api-san "$HOST" >"$LOGS/certs.log" 2>&1 || die "certificate generation failed: $(tail -5 "$LOGS/certs.log")"
  local certs="$FHOME/.flightctl/certs"
  mkdir -p "$certs"
  # Where flightctl-api expects each file (deploy/podman/flightctl-api).
  ln -sf "$PKI/flightctl-api/server.crt" "$certs/server.crt"
  ln -sf "$PKI/flightctl-api/server.key" "$certs/server.key"
  ln -sf "$PKI/flightctl-api/client-signer.crt" "$certs/client-signer.crt"
  ln -sf "$PKI/flightctl-api/client-signer.key" "$certs/client-signer.key"
  ln -sf "$PKI/ca-bundle.crt" "$certs/ca-bundle.crt"
}

write_config() {
  mkdir -p "$FHOME/.flightctl"
  (umask 077 && cat >"$FHOME/.flightctl/config.yaml" <<YAML
# Written by hack/real-flightctl.sh: everything on $HOST, OIDC through
# hack/oidc-issuer (static organization "default", role flightctl-admin).
database:
  type: pgsql
  hostname: $HOST
  port: $PG_PORT
  name: flightctl
  user: flightctl_app
  password: $(secret db-app)
  migrationUser: flightctl_migrator
  migrationPassword: $(secret db-migrator)
service:
  address: $HOST:$API_PORT
  agentEndpointAddress: $HOST:$AGENT_PORT
  baseUrl: $API_URL
  baseAgentEndpointUrl: $AGENT_URL
  altNames: [localhost, $HOST]
  logLevel: info
kv:
  hostname: $HOST
  port: $REDIS_PORT
  password: $(secret redis)
metrics:
  enabled: false
  address: $HOST:15690
auth:
  oidc:
    enabled: true
    providerType: oidc
    issuer: $ISSUER_URL
    clientId: flightctl-client
    usernameClaim: [preferred_username]
    organizationAssignment:
      type: static
      organizationName: default
    roleAssignment:
      type: static
      roles: [flightctl-admin]
YAML
  )
}

migrate() {
  [ -f "$STATE/.migrated-$FLIGHTCTL_VERSION" ] && return
  log "flightctl-db-migrate"
  HOME="$FHOME" "$BIN/flightctl-db-migrate" >"$LOGS/db-migrate.log" 2>&1 ||
    die "flightctl-db-migrate failed: $(tail -5 "$LOGS/db-migrate.log")"
  touch "$STATE/.migrated-$FLIGHTCTL_VERSION"
}

mint_token() { # ttl
  "$BIN/oidc-issuer" mint --issuer "$ISSUER_URL" --key "$STATE/secrets/oidc-key.pem" --subject admin --ttl "${1:-4h}"
}

wait_api() {
  local token code i
  token="$(mint_token 10m)"
  for i in $(seq 1 90); do
    pid_alive flightctl-api || die "flightctl-api exited: $(tail -5 "$LOGS/flightctl-api.log")"
    code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" -H "Authorization: Bearer $token" \
      "$API_URL/api/v1/devices?limit=1" || true)"
    [ "$code" = 200 ] && return 0
    sleep 1
  done
  die "flightctl-api did not answer GET /api/v1/devices with 200 within 90 s (last: $code): $(tail -5 "$LOGS/flightctl-api.log")"
}

# check_loopback fails when a process this script started listens on
# anything but loopback (the gorm exporter would, if the hold failed).
check_loopback() {
  local pids bad
  pids="$(cat "$PIDS"/*.pid 2>/dev/null | tr '\n' '|' | sed 's/|$//')"
  pg_pid="$(head -1 "$PGDATA/postmaster.pid" 2>/dev/null || true)"
  [ -n "$pg_pid" ] && pids="$pids|$pg_pid"
  bad="$(ss -Hltnp 2>/dev/null | grep -E "pid=($pids)," | awk '{print $4}' | grep -vE '^(127\.[0-9.]+|\[::1\]):' || true)"
  [ -z "$bad" ] || die "a Flightctl-side process listens beyond loopback: $bad"
}

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$STATE" "$PIDS" "$LOGS"
  secret oidc-client >/dev/null
  ensure_packages
  build_all
  start_issuer
  start_postgres
  setup_database
  start_redis
  make_certs
  write_config
  migrate
  start_proc flightctl-api "$LOGS/flightctl-api.log" "$BIN/flightctl-api"
  wait_port "$API_PORT" api 60 || die "flightctl-api did not listen on $API_PORT: $(tail -5 "$LOGS/flightctl-api.log")"
  start_proc flightctl-worker "$LOGS/flightctl-worker.log" "$BIN/flightctl-worker"
  start_proc flightctl-periodic "$LOGS/flightctl-periodic.log" "$BIN/flightctl-periodic"
  wait_api
  check_loopback
  local version
  version="$(curl -s --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(mint_token 5m)" "$API_URL/api/v1/version" |
    sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p')"
  log "Flightctl ${version:-?} serving on $API_URL (agent endpoint $AGENT_URL) after $((SECONDS - t0))s"
  log 'use it with: eval "$(hack/real-flightctl.sh env)"'
}

cmd_down() {
  for p in flightctl-periodic flightctl-worker flightctl-api redis; do stop_proc "$p"; done
  if [ -f "$PGDATA/postmaster.pid" ]; then
    as_pg "$(pg_bin pg_ctl)" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 && log "stopped PostgreSQL" || true
  fi
  stop_proc oidc-issuer
  local p left=()
  for p in "$API_PORT" "$AGENT_PORT" "$PG_PORT" "$REDIS_PORT" "$ISSUER_PORT"; do
    port_listening "$p" && left+=("$p")
  done
  [ ${#left[@]} -eq 0 ] || die "still listening after down: ports ${left[*]}"
  if [ "${1:-}" = --purge ]; then rm -rf "$STATE"; [ "$PG_ROOT" = "$STATE" ] || rm -rf "$PG_ROOT"; log "deleted $STATE"; fi
}

cmd_env() {
  [ -x "$BIN/oidc-issuer" ] && [ -f "$STATE/secrets/oidc-key.pem" ] || die "not set up: run hack/real-flightctl.sh up"
  pid_alive flightctl-api || die "flightctl-api is not running: run hack/real-flightctl.sh up"
  printf 'export FLIGHTCTL_URL=%q\n' "$API_URL"
  printf 'export FLIGHTCTL_TOKEN=%q\n' "$(mint_token "${REAL_FLIGHTCTL_TOKEN_TTL:-4h}")"
  printf 'export FLIGHTCTL_CA=%q\n' "$PKI/ca.crt"
  printf 'export FLIGHTCTL_AGENT_ENDPOINT=%q\n' "$AGENT_URL"
  printf 'export FLIGHTCTL_OIDC_ISSUER=%q\n' "$ISSUER_URL"
  printf 'export FLIGHTCTL_OIDC_CLIENT_ID=%q\n' flightctl-client
  printf 'export FLIGHTCTL_OIDC_CLIENT_SECRET_FILE=%q\n' "$STATE/secrets/oidc-client"
}

cmd_status() {
  local p
  for p in oidc-issuer redis flightctl-api flightctl-worker flightctl-periodic; do
    if pid_alive "$p"; then echo "$p: running (pid $(cat "$PIDS/$p.pid"))"; else echo "$p: stopped"; fi
  done
  if [ -f "$PGDATA/postmaster.pid" ]; then echo "postgresql: running"; else echo "postgresql: stopped"; fi
}

# cmd_pids prints "<name> <pid>" for every running process (PostgreSQL as
# postgres, its postmaster), for tools that measure the server's CPU.
cmd_pids() {
  local p
  for p in oidc-issuer redis flightctl-api flightctl-worker flightctl-periodic; do
    if pid_alive "$p"; then echo "$p $(cat "$PIDS/$p.pid")"; fi
  done
  if [ -f "$PGDATA/postmaster.pid" ]; then echo "postgres $(head -1 "$PGDATA/postmaster.pid")"; fi
}

case "${1:-}" in
  up) cmd_up ;;
  pids) cmd_pids ;;
  down) shift; cmd_down "$@" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down [--purge]|env|status|pids" >&2; exit 2 ;;
esac
