#!/usr/bin/env bash
# Submit a kappalake job with spark-submit: locally or as an Amazon EMR step.
#
#   ./spark-submit.sh [options] [--] <kappalake arguments>
#
#   ./spark-submit.sh -- ingest --available-now                     # local[*], profile local
#   ./spark-submit.sh --profile emr --master yarn --deploy-mode cluster -- ingest
#
# Options:
#   --profile NAME        configuration profile, conf/NAME.yaml (default: local)
#   --master URL          Spark master (default: local[*] for profile local; yarn otherwise)
#   --deploy-mode MODE    client | cluster (default: client)
#   --conf KEY=VALUE      extra Spark conf (repeatable)
#   --no-delta-package    do not add io.delta:delta-spark to --packages (EMR with the
#                         delta-defaults classification provides it; default for non-local profiles)
#   --dry-run             print the spark-submit command instead of running it
#
# The package is shipped to the driver and executors as dist/kappalake.zip (--py-files) and
# the conf/ directory as dist/kappalake-conf.zip (--archives, unpacked as ./kappalake-conf in
# YARN containers). On EMR, the driver's Python also needs kappalake's dependencies
# (pyyaml, pydantic, kafka-python): install the wheel in a bootstrap action (see docs/deploying.md).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROFILE=local
MASTER=""
DEPLOY_MODE=client
DRY_RUN=0
DELTA_PACKAGE=""
EXTRA_CONF=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --master) MASTER="$2"; shift 2 ;;
    --deploy-mode) DEPLOY_MODE="$2"; shift 2 ;;
    --conf) EXTRA_CONF+=(--conf "$2"); shift 2 ;;
    --no-delta-package) DELTA_PACKAGE=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [[ $# -eq 0 ]]; then
  echo "spark-submit.sh: give the kappalake command to run, e.g. ./spark-submit.sh -- ingest --available-now" >&2
  exit 2
fi
case "$DEPLOY_MODE" in client|cluster) ;; *) echo "spark-submit.sh: --deploy-mode must be client or cluster, not '$DEPLOY_MODE'" >&2; exit 2 ;; esac

# Python: the project's virtualenv when present, else the one on PATH.
PYTHON="${KAPPALAKE_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$HERE/.venv/bin/python" ]]; then PYTHON="$HERE/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi
SPARK_SUBMIT="${SPARK_SUBMIT:-}"
if [[ -z "$SPARK_SUBMIT" ]]; then
  if [[ -x "$(dirname "$PYTHON")/spark-submit" ]]; then SPARK_SUBMIT="$(dirname "$PYTHON")/spark-submit"; else SPARK_SUBMIT="spark-submit"; fi
fi

if [[ -z "$MASTER" ]]; then
  if [[ "$PROFILE" == local ]]; then MASTER="local[*]"; else MASTER=yarn; fi
fi
[[ -n "$DELTA_PACKAGE" ]] || { [[ "$PROFILE" == local ]] && DELTA_PACKAGE=1 || DELTA_PACKAGE=0; }

# Package the code and the configuration for the cluster.
mkdir -p "$HERE/dist"
"$PYTHON" - "$HERE" <<'PY'
import pathlib, sys, zipfile
root = pathlib.Path(sys.argv[1])
with zipfile.ZipFile(root / "dist/kappalake.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted([*(root / "src").rglob("*.py"), *(root / "src").rglob("*.json")]):
        z.write(f, "kappalake/" + f.relative_to(root / "src").as_posix())
with zipfile.ZipFile(root / "dist/kappalake-conf.zip", "w", zipfile.ZIP_DEFLATED) as z:
    # Everything: profiles and suites, and a user's own contracts (contracts_dir) and libraries.
    for f in sorted(p for p in (root / "conf").rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        z.write(f, f.relative_to(root / "conf").as_posix())
PY

# Versions come from the validated configuration and the installed delta-spark, so the
# jars always match what the Python side was tested with. (The emr profile needs its
# environment variables set for validation, exactly as the job itself does.)
CONNECTOR_VERSION="$(cd "$HERE" && PYTHONPATH="$HERE/dist/kappalake.zip:${PYTHONPATH:-}" \
  "$PYTHON" -m kappalake --profile "$PROFILE" --conf-dir "$HERE/conf" config get spark.kafka_connector_version)"
PACKAGES="org.apache.spark:spark-sql-kafka-0-10_2.13:${CONNECTOR_VERSION}"
EXTRA_PACKAGES="$(cd "$HERE" && PYTHONPATH="$HERE/dist/kappalake.zip:${PYTHONPATH:-}" \
  "$PYTHON" -m kappalake --profile "$PROFILE" --conf-dir "$HERE/conf" config get spark.extra_packages \
  | "$PYTHON" -c 'import json, sys; print(",".join(json.load(sys.stdin)))')"
[[ -z "$EXTRA_PACKAGES" ]] || PACKAGES="${PACKAGES},${EXTRA_PACKAGES}"
if [[ "$DELTA_PACKAGE" == 1 ]]; then
  DELTA_VERSION="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("delta-spark"))')"
  PACKAGES="io.delta:delta-spark_2.13:${DELTA_VERSION},${PACKAGES}"
fi

if [[ "$DEPLOY_MODE" == cluster ]]; then CONF_DIR=kappalake-conf; else CONF_DIR="$HERE/conf"; fi

# In cluster mode the driver runs in a YARN container: hand it the KAPPALAKE_* variables the
# profile reads. Spark redacts keys matching spark.redaction.regex (password, secret, token) in
# its UI and logs; --dry-run masks them too.
ENV_CONF=()
SHOWN_ENV_CONF=()
if [[ "$DEPLOY_MODE" == cluster ]]; then
  while IFS='=' read -r name value; do
    [[ "$name" == KAPPALAKE_* ]] || continue
    ENV_CONF+=(--conf "spark.yarn.appMasterEnv.${name}=${value}")
    if [[ "$name" =~ (PASSWORD|SECRET|TOKEN|KEY) ]]; then value='******'; fi
    SHOWN_ENV_CONF+=(--conf "spark.yarn.appMasterEnv.${name}=${value}")
  done < <(env)
fi

CMD=("$SPARK_SUBMIT"
  --master "$MASTER"
  --deploy-mode "$DEPLOY_MODE"
  --name "kappalake-$1"
  --packages "$PACKAGES"
  --py-files "$HERE/dist/kappalake.zip"
  --archives "$HERE/dist/kappalake-conf.zip#kappalake-conf"
  --conf "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension"
  --conf "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"
  --conf "spark.pyspark.python=${PYSPARK_PYTHON:-$PYTHON}"
  "${EXTRA_CONF[@]}")
TAIL=("$HERE/src/__main__.py" --profile "$PROFILE" --conf-dir "$CONF_DIR" "$@")

if [[ "$DRY_RUN" == 1 ]]; then
  printf '%q ' "${CMD[@]}" "${SHOWN_ENV_CONF[@]}" "${TAIL[@]}"; echo
  exit 0
fi
CMD+=("${ENV_CONF[@]}" "${TAIL[@]}")
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$PYTHON}"
cd "$HERE"
if [[ "$DEPLOY_MODE" == cluster ]]; then exec "${CMD[@]}"; fi

# Client mode: spark-submit's JVM runs the Python driver as its child. A SIGTERM or SIGINT to
# the JVM would run its shutdown hooks and stop the SparkContext under the running queries;
# sent to the driver, it stops them gracefully as `kappalake ingest` does (exit 0, nothing
# half-written, the next run resumes). So the job runs in the background (which also keeps a
# terminal's Ctrl-C from reaching it directly) and this script hands the signal to the driver.
"${CMD[@]}" &
JOB=$!
forward() {
  local driver
  driver="$(pgrep -P "$JOB" -f "$HERE/src/__main__.py" | head -n 1 || true)"
  kill -TERM "${driver:-$JOB}" 2>/dev/null || true
}
trap forward TERM INT HUP
set +e  # wait returns 128+n when a signal interrupts it
while :; do
  wait "$JOB"; status=$?
  if (( status < 128 )) || ! kill -0 "$JOB" 2>/dev/null; then break; fi
done
if (( status >= 128 )); then  # the signal's own 128+n, if the job exited just then: ask once more
  wait "$JOB" 2>/dev/null; final=$?
  (( final == 127 )) || status=$final
fi
exit "$status"
