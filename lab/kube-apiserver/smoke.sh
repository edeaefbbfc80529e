#!/usr/bin/env bash
# Smoke test: real etcd + real kube-apiserver on loopback, the way
# controller-runtime's envtest runs them. Measures the apiserver cold start,
# round-trips a ConfigMap, and tears everything down (trap on EXIT).
#
# Env:
#   KUBE_APISERVER  path to a kube-apiserver binary (default: $(build.sh))
#   ETCD            path to etcd (default: etcd on PATH, from Debian etcd-server)
#   READY_TIMEOUT   seconds to wait for /readyz (default 120)
#   SMOKE_KEEP=1    keep the temp dir (logs, certs) for inspection
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
READY_TIMEOUT="${READY_TIMEOUT:-120}"

log() { printf '[kube-apiserver/smoke %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for tool in openssl curl ss sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found (see lab/kube-apiserver/install-deps.sh)"
done
ETCD="${ETCD:-$(command -v etcd || true)}"
[[ -x $ETCD ]] || die "etcd not found: run lab/kube-apiserver/install-deps.sh"
KUBE_APISERVER="${KUBE_APISERVER:-$("$HERE/build.sh" | tail -n1)}"
[[ -x $KUBE_APISERVER ]] || die "kube-apiserver not found at '$KUBE_APISERVER'"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/edgectl-apiserver-smoke.XXXXXX")"
ETCD_PID="" APISERVER_PID="" OK=0

stop_pid() { # pid name
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$2 (pid $pid) ignored SIGTERM for 10s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$APISERVER_PID" kube-apiserver
  stop_pid "$ETCD_PID" etcd
  if (( ! OK )); then
    for f in etcd.log kube-apiserver.log; do
      [[ -s $TMP/$f ]] && { log "--- last lines of $f ---"; tail -n 25 "$TMP/$f" >&2; }
    done
  fi
  if [[ ${SMOKE_KEEP:-} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# A random free TCP port on 127.0.0.1 in 20000-59999 (not listening, not in use).
used_ports=" "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    [[ $used_ports == *" $p "* ]] && continue
    if [[ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]]; then
      used_ports+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

ETCD_CLIENT_PORT="$(free_port)"
ETCD_PEER_PORT="$(free_port)"
SECURE_PORT="$(free_port)"
ETCD_URL="http://127.0.0.1:$ETCD_CLIENT_PORT"
API="https://127.0.0.1:$SECURE_PORT"

# --- credentials -----------------------------------------------------------
CERTS="$TMP/certs"
mkdir -p "$CERTS"   # etcd creates its own data dir (it wants mode 0700)
chmod 700 "$TMP"
# Service-account token signing key pair (envtest: sa-signer.key / .crt).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$CERTS/sa-signer.key" 2>/dev/null
openssl pkey -in "$CERTS/sa-signer.key" -pubout -out "$CERTS/sa-signer.pub" 2>/dev/null
# Static bearer token for an admin: user "admin" in group system:masters
# (envtest does the same with a client certificate).
TOKEN="$(openssl rand -hex 24)"
printf '%s,admin,admin-uid,"system:masters"\n' "$TOKEN" >"$CERTS/tokens.csv"
chmod 600 "$CERTS"/*

# --- etcd ------------------------------------------------------------------
ETCD_ARGS=(
  --name=edgectl-smoke
  --data-dir="$TMP/etcd"
  --listen-client-urls="$ETCD_URL"
  --advertise-client-urls="$ETCD_URL"
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT"
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT"
  --initial-cluster="edgectl-smoke=http://127.0.0.1:$ETCD_PEER_PORT"
  --initial-cluster-state=new
  --log-level=warn
)
log "starting etcd ($("$ETCD" --version | head -n1)) on $ETCD_URL"
t_etcd=$(now)
"$ETCD" "${ETCD_ARGS[@]}" >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
until curl -fsS --max-time 1 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'; do
  kill -0 "$ETCD_PID" 2>/dev/null || die "etcd exited during startup"
  (( $(awk -v a="$t_etcd" -v b="$(now)" 'BEGIN { print (b - a > 30) }') )) && die "etcd not healthy after 30s"
  sleep 0.1
done
log "etcd healthy in $(elapsed "$t_etcd" "$(now)")s"

# --- kube-apiserver --------------------------------------------------------
APISERVER_ARGS=(
  --advertise-address=127.0.0.1
  --bind-address=127.0.0.1
  --secure-port="$SECURE_PORT"
  --cert-dir="$CERTS"                       # self-signed serving cert is generated here
  --etcd-servers="$ETCD_URL"
  --service-cluster-ip-range=10.0.0.0/24
  --allow-privileged=true
  --authorization-mode=RBAC
  --disable-admission-plugins=ServiceAccount
  --token-auth-file="$CERTS/tokens.csv"
  --service-account-issuer="$API/"
  --service-account-key-file="$CERTS/sa-signer.pub"
  --service-account-signing-key-file="$CERTS/sa-signer.key"
)
log "starting $("$KUBE_APISERVER" --version 2>&1 | head -n1) on $API"
t_api=$(now)
"$KUBE_APISERVER" "${APISERVER_ARGS[@]}" >"$TMP/kube-apiserver.log" 2>&1 &
APISERVER_PID=$!

kc() { curl -sk --max-time 10 -H "Authorization: Bearer $TOKEN" "$@"; }

while :; do
  kill -0 "$APISERVER_PID" 2>/dev/null || die "kube-apiserver exited during startup"
  [[ "$(kc -o /dev/null -w '%{http_code}' "$API/readyz" 2>/dev/null || true)" == 200 ]] && break
  (( $(awk -v a="$t_api" -v b="$(now)" -v t="$READY_TIMEOUT" 'BEGIN { print (b - a > t) }') )) \
    && { kc "$API/readyz?verbose" >&2 || true; die "/readyz not ok after ${READY_TIMEOUT}s"; }
  sleep 0.1
done
COLD_START="$(elapsed "$t_api" "$(now)")"
log "/readyz ok after ${COLD_START}s"

# --- checks ----------------------------------------------------------------
code="$(curl -sk -o /dev/null -w '%{http_code}' "$API/api/v1/namespaces")"
[[ $code == 401 || $code == 403 ]] || die "anonymous request was not refused (HTTP $code)"

ver="$(kc "$API/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
log "server /version gitVersion=$ver"

VALUE="edgectl-$(openssl rand -hex 6)"
CM="{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"edgectl-smoke\",\"namespace\":\"default\"},\"data\":{\"hello\":\"$VALUE\"}}"
# The "default" namespace is created by a post-start controller; retry briefly.
for ((i = 0; i < 50; i++)); do
  code="$(kc -o "$TMP/create.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data "$CM" "$API/api/v1/namespaces/default/configmaps" || true)"
  [[ $code == 201 ]] && break
  sleep 0.2
done
[[ $code == 201 ]] || { cat "$TMP/create.json" >&2 2>/dev/null || true; die "create ConfigMap: HTTP $code"; }

got="$(kc -f "$API/api/v1/namespaces/default/configmaps/edgectl-smoke")" || die "get ConfigMap failed"
read_back="$(printf '%s' "$got" | sed -n 's/.*"hello": *"\([^"]*\)".*/\1/p')"
[[ $read_back == "$VALUE" ]] || die "ConfigMap read back '$read_back', wanted '$VALUE'"
log "ConfigMap default/edgectl-smoke created and read back (hello=$read_back)"

# Also check RBAC is in force: an unknown token is 401, admin may do anything.
code="$(curl -sk -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "$API/api/v1/namespaces")"
[[ $code == 401 ]] || die "bogus token not rejected (HTTP $code)"

OK=1
echo "kube-apiserver $ver OK; cold start (process start -> /readyz ok): ${COLD_START}s"
