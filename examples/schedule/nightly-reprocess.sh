#!/usr/bin/env bash
# Nightly reprocess: rebuild one UTC day of the silver tables, then of the gold tables that
# read them, with the current transforms and quality rules (kappalake reprocess --day).
#
#   examples/schedule/nightly-reprocess.sh [DAY] [reprocess options...]
#
#   DAY      YYYY-MM-DD or yesterday (default). "yesterday" is resolved once, at start, so
#            every table gets the same day even if the run crosses midnight UTC.
#   options  passed to every reprocess call, e.g. --dry-run or --margin "2 hours"
#
#   KAPPALAKE  the command to run (default: .venv/bin/kappalake), e.g.
#              KAPPALAKE="./spark-submit.sh --profile emr --" or ".venv/bin/kappalake --profile emr"
#
# Runs from the repository checkout this script is in. Tables run one after the other, silver
# first; the first failure stops the run with its exit code (1 pipeline failure, 2 configuration
# error). A run that finds another one still going exits 1 without doing anything.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SILVER=(silver.clickstream silver.telemetry)
GOLD=(gold.page_minute gold.sessions gold.funnel_hourly gold.concurrent_viewers gold.product_demand
      gold.device_minute gold.zone_occupancy gold.fleet_health)

log() { printf '%s nightly-reprocess: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

# One run at a time: hold a lock on this script for the whole run.
exec 9<"${BASH_SOURCE[0]}"
if ! flock -n 9; then
  log "another nightly reprocess is still running; not starting"
  exit 1
fi

ARG="${1:-yesterday}"
shift || true
if ! DAY="$(date -u -d "$ARG" +%Y-%m-%d 2>/dev/null)"; then
  log "not a day: '${ARG}' (give YYYY-MM-DD or yesterday)"
  exit 2
fi
read -r -a KAPPALAKE_CMD <<< "${KAPPALAKE:-.venv/bin/kappalake}"

log "reprocessing ${DAY} (UTC) with ${KAPPALAKE_CMD[*]}"
for table in "${SILVER[@]}" "${GOLD[@]}"; do
  log "${table}: start"
  start=$SECONDS
  rc=0
  "${KAPPALAKE_CMD[@]}" reprocess --table "$table" --day "$DAY" "$@" || rc=$?
  if [[ $rc -ne 0 ]]; then
    log "${table}: FAILED with exit code ${rc} after $((SECONDS - start)) s; stopping"
    exit "$rc"
  fi
  log "${table}: done in $((SECONDS - start)) s"
done
log "all $(( ${#SILVER[@]} + ${#GOLD[@]} )) tables reprocessed for ${DAY}"
