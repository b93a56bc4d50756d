#!/usr/bin/env bash
# Load test of the mute/unmute command (202) against the simulator, through the real HTTP API.
#   1. start the lab with Redis and no cooldowns:
#        redis-server --port 6399 --save '' --appendonly no &
#        target/release/switchyard lab --redis redis://127.0.0.1:6399/ --global-rps 0 --cooldown-ms 0 &
#   2. bash benches/load/mute.sh [sessions] [rooms] [duration]
# It makes the calls, joins them (ROOMS rooms), then runs wrk (1 thread, 32 connections).
set -euo pipefail
API=${API:-http://127.0.0.1:8080}
N=${1:-512}
ROOMS=${2:-16}
DURATION=${3:-10s}
AUTH=(-H "X-App-ID: ${APP:-lab-app}" -H "X-API-Key: ${KEY:-lab-key}" -H "Content-Type: application/json")
OUT=${SESSIONS:-/tmp/switchyard-sessions.txt}
: > "$OUT"
rooms=()
for r in $(seq 1 "$ROOMS"); do
  rooms+=("$(curl -sf "${AUTH[@]}" -X POST "$API/api/v1/conferences" -d "{\"name\":\"load-$RANDOM-$r\"}" | sed 's/.*"room_id":"\([^"]*\)".*/\1/')")
done
sleep 1
for i in $(seq 1 "$N"); do
  s=$(curl -sf "${AUTH[@]}" -X POST "$API/lab/v1/calls" -d "{\"did\":\"15551230000\",\"caller_id\":\"$((1000 + i))\"}" | sed 's/.*"uuid":"\([^"]*\)".*/\1/')
  room=${rooms[$((i % ROOMS))]}
  curl -sf "${AUTH[@]}" -X POST "$API/api/v1/sessions/$s/commands/conference/join" -d "{\"room_id\":\"$room\"}" >/dev/null
  echo "$s" >> "$OUT"
done
sleep 2
SESSIONS="$OUT" wrk -t1 -c"${CONNECTIONS:-32}" -d"$DURATION" --latency -s "$(dirname "$0")/mute.lua" "$API"
