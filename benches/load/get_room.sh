#!/usr/bin/env bash
# Load test of GET /api/v1/conferences/{room_id} against a bare handler (GET /healthz) in the
# same run, through the real HTTP API.
#   1. start the lab with Redis:
#        redis-server --port 6399 --save '' --appendonly no &
#        target/release/switchyard lab --redis redis://127.0.0.1:6399/ --global-rps 0 &
#   2. bash benches/load/get_room.sh [members] [duration]
# It creates a room with MEMBERS joined calls (default 4), then runs wrk (1 thread, 32
# connections) on /healthz, on the room, and on /healthz again, and prints the ratio.
set -euo pipefail
API=${API:-http://127.0.0.1:8080}
MEMBERS=${1:-4}
DURATION=${2:-8s}
C=${CONNECTIONS:-32}
AUTH=(-H "X-App-ID: ${APP:-lab-app}" -H "X-API-Key: ${KEY:-lab-key}")
room=$(curl -sf "${AUTH[@]}" -H "Content-Type: application/json" -X POST "$API/api/v1/conferences" \
  -d "{\"name\":\"get-$RANDOM$RANDOM\"}" | sed 's/.*"room_id":"\([^"]*\)".*/\1/')
for i in $(seq 1 "$MEMBERS"); do
  s=$(curl -sf "${AUTH[@]}" -H "Content-Type: application/json" -X POST "$API/lab/v1/calls" \
    -d "{\"did\":\"15551230000\",\"caller_id\":\"$((2000 + i))\"}" | sed 's/.*"uuid":"\([^"]*\)".*/\1/')
  curl -sf "${AUTH[@]}" -H "Content-Type: application/json" -X POST \
    "$API/api/v1/sessions/$s/commands/conference/join" -d "{\"room_id\":\"$room\"}" >/dev/null
done
sleep 1
curl -sf "${AUTH[@]}" "$API/api/v1/conferences/$room"; echo
rps() { wrk -t1 -c"$C" -d"$DURATION" --latency "$@" | tee /dev/stderr | awk '/Requests\/sec/ {print $2}'; }
h1=$(rps "$API/healthz")
g=$(rps "${AUTH[@]}" "$API/api/v1/conferences/$room")
h2=$(rps "$API/healthz")
awk -v g="$g" -v a="$h1" -v b="$h2" \
  'BEGIN { h = (a + b) / 2; printf "GET room %.0f req/s, healthz %.0f req/s (mean of %.0f and %.0f): %.1f %%\n", g, h, a, b, 100 * g / h }'
