#!/usr/bin/env bash
# The whole relay on this machine: Redis (private unless SMARTHOST_REDIS_URL is
# set), policy, ingress on 127.0.0.1:2525 and two delivery workers. Ctrl-C
# stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
STATE=run
mkdir -p "$STATE"
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

if [ -z "${SMARTHOST_REDIS_URL:-}" ]; then
  port=${SMARTHOST_LOCAL_REDIS_PORT:-6390}
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/$STATE" \
    --appendonly yes --appendfsync everysec --save "" --logfile "$PWD/$STATE/redis.log" &
  pids+=($!)
  export SMARTHOST_REDIS_URL="redis://127.0.0.1:$port/0"
fi
export SMARTHOST_POLICY_FILE="${SMARTHOST_POLICY_FILE:-$PWD/examples/policy.yaml}"
export SMARTHOST_POLICY_LISTEN="${SMARTHOST_POLICY_LISTEN:-127.0.0.1:50051}"
export SMARTHOST_POLICY_ADDR="${SMARTHOST_POLICY_ADDR:-$SMARTHOST_POLICY_LISTEN}"
export SMARTHOST_SMTP_LISTEN="${SMARTHOST_SMTP_LISTEN:-127.0.0.1:2525}"

SMARTHOST_METRICS_LISTEN=127.0.0.1:9101 "$BIN/smarthost-policy" & pids+=($!)
SMARTHOST_METRICS_LISTEN=127.0.0.1:9100 "$BIN/smarthost-ingress" & pids+=($!)
for n in 1 2; do
  SMARTHOST_METRICS_LISTEN=127.0.0.1:910$((n + 1)) SMARTHOST_CONSUMER_NAME="local-$n" \
    "$BIN/smarthost-delivery" & pids+=($!)
done
sleep 1
cat <<MSG

smarthost is running: SMTP on $SMARTHOST_SMTP_LISTEN, Redis at $SMARTHOST_REDIS_URL,
metrics on 127.0.0.1:9100 (ingress), :9101 (policy), :9102 and :9103 (delivery).
Send a test message:

  swaks --server ${SMARTHOST_SMTP_LISTEN} --from you@example.org --to someone@example.net

Queue:  SMARTHOST_REDIS_URL=$SMARTHOST_REDIS_URL $BIN/smarthostctl queue stats
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
