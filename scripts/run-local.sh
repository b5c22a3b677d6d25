#!/usr/bin/env bash
# The whole relay on this machine: Redis (private unless SMARTHOST_REDIS_URL is
# set), policy, ingress on 127.0.0.1:2525 and two delivery workers. Unless
# SMARTHOST_DNS_SERVERS is set, a demo DNS server (dnsmasq) and a demo mailbox
# (an SMTP server on 127.0.0.2 that prints what it receives) stand in for the
# internet, so a test message travels the whole way. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
STATE=${SMARTHOST_LOCAL_STATE:-$PWD/run}
METRICS=${SMARTHOST_LOCAL_METRICS_BASE:-9100}
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
  redis-server --port "$port" --bind 127.0.0.1 --dir "$STATE" \
    --appendonly yes --appendfsync everysec --save "" --logfile "$STATE/redis.log" &
  pids+=($!)
  export SMARTHOST_REDIS_URL="redis://127.0.0.1:$port/0"
fi
if [ -z "${SMARTHOST_DNS_SERVERS:-}" ]; then
  dns_port=${SMARTHOST_LOCAL_DNS_PORT:-5354}
  mailbox_port=${SMARTHOST_LOCAL_MAILBOX_PORT:-2526}
  "$(command -v dnsmasq || echo /usr/sbin/dnsmasq)" --keep-in-foreground --conf-file=examples/demo-zone.conf \
    --port="$dns_port" --listen-address=127.0.0.1 --bind-interfaces --pid-file --log-facility="$STATE/dns.log" &
  pids+=($!)
  "$BIN/python" -u -m aiosmtpd -n -l "127.0.0.2:$mailbox_port" -c aiosmtpd.handlers.Debugging &
  pids+=($!)
  export SMARTHOST_DNS_SERVERS="127.0.0.1:$dns_port"
  export SMARTHOST_DELIVERY_PORT="$mailbox_port"
  export SMARTHOST_DELIVERY_ALLOW_NETWORKS="127.0.0.0/8"
  demo=1
fi
export SMARTHOST_POLICY_FILE="${SMARTHOST_POLICY_FILE:-$PWD/examples/policy.yaml}"
export SMARTHOST_POLICY_LISTEN="${SMARTHOST_POLICY_LISTEN:-127.0.0.1:50051}"
export SMARTHOST_POLICY_ADDR="${SMARTHOST_POLICY_ADDR:-$SMARTHOST_POLICY_LISTEN}"
export SMARTHOST_SMTP_LISTEN="${SMARTHOST_SMTP_LISTEN:-127.0.0.1:2525}"
export SMARTHOST_HOSTNAME="${SMARTHOST_HOSTNAME:-relay.local}"

SMARTHOST_METRICS_LISTEN=127.0.0.1:$((METRICS + 1)) "$BIN/smarthost-policy" & pids+=($!)
SMARTHOST_METRICS_LISTEN=127.0.0.1:$METRICS "$BIN/smarthost-ingress" & pids+=($!)
for n in 1 2; do
  SMARTHOST_METRICS_LISTEN=127.0.0.1:$((METRICS + 1 + n)) SMARTHOST_CONSUMER_NAME="local-$n" \
    "$BIN/smarthost-delivery" & pids+=($!)
done
# Ready when every service's /readyz says so (each within 30 s), not after a fixed pause.
for port in "$METRICS" $((METRICS + 1)) $((METRICS + 2)) $((METRICS + 3)); do
  "$BIN/python" - "$port" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1):
            break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"the service with metrics port {sys.argv[1]} did not get ready")
        time.sleep(0.1)
PY
done
to=someone@example.net from=you@example.org
[ -n "${demo:-}" ] && to=someone@demo.test from=you@sender.test
cat <<MSG

smarthost is running: SMTP on $SMARTHOST_SMTP_LISTEN, Redis at $SMARTHOST_REDIS_URL,
metrics on 127.0.0.1:$METRICS (ingress), :$((METRICS + 1)) (policy), :$((METRICS + 2)) and :$((METRICS + 3)) (delivery).
Send a test message${demo:+ (the demo mailbox prints it here)}:

  swaks --server ${SMARTHOST_SMTP_LISTEN} --from $from --to $to

Queue:  SMARTHOST_REDIS_URL=$SMARTHOST_REDIS_URL $BIN/smarthostctl queue stats
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
