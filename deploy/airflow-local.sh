#!/usr/bin/env bash
# One command for a local Airflow that runs trialpipe's DAGs on a schedule:
#
#     deploy/airflow-local.sh
#
# It starts what `airflow standalone` starts -- scheduler, dag-processor, triggerer and api-server --
# with the LocalExecutor and a SQLite metadata DB under $AIRFLOW_HOME, every port on 127.0.0.1 only.
# `airflow standalone` itself is not used because its scheduler and triggerer serve task logs on every
# interface (ports 8793/8794, not configurable); here they run with --skip-serve-logs and the UI reads
# the log files under $AIRFLOW_HOME/logs directly.
#
# Environment (all optional):
#   AIRFLOW_HOME         airflow.cfg, metadata DB, logs, admin password     (default: <repo>/.airflow)
#   AIRFLOW_PORT         port of the UI and REST API on 127.0.0.1           (default: 8080)
#   TRIALPIPE_STUDY      study configuration                                (default: ./study.toml)
#   TRIALPIPE_LANDING    landing zone, one folder per site                  (default: ./landing)
#   TRIALPIPE_WAREHOUSE  warehouse: event log, trial.duckdb, reports        (default: ./warehouse)
#   TRIALPIPE_VENV       the environment whose bin/ holds airflow           (default: <repo>/.venv)
#   TRIALPIPE_DEMO_PATIENTS  patients of the demo study simulated when there is no study file (default: 120)
#   TRIALPIPE_SMTP_HOST  a real SMTP server; unset, a local catcher (aiosmtpd on 127.0.0.1) takes every
#                        message and saves it under $AIRFLOW_HOME/mail/new/, one file per message
#   TRIALPIPE_LOCAL_SMTP_PORT  port of that catcher                         (default: 8025)
#
# Without a study file (and with an empty landing zone) it first simulates a demo study into them.
# Stop with Ctrl-C: every component is stopped with it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TRIALPIPE_VENV:-$repo/.venv}"
if [[ ! -x "$venv/bin/airflow" ]]; then
    echo "airflow-local: no airflow in $venv/bin; run 'uv sync' first (or set TRIALPIPE_VENV)" >&2
    exit 1
fi
# Every component is an `airflow` subprocess: the environment's bin/ must come first on PATH.
export PATH="$venv/bin:$PATH"

abspath() { if [[ "$1" = /* ]]; then printf '%s\n' "$1"; else printf '%s\n' "$PWD/$1"; fi; }

port="${AIRFLOW_PORT:-8080}"
export AIRFLOW_HOME; AIRFLOW_HOME="$(abspath "${AIRFLOW_HOME:-$repo/.airflow}")"
export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$port"
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$port"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$port/execution/"
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"

export TRIALPIPE_STUDY TRIALPIPE_LANDING TRIALPIPE_WAREHOUSE
TRIALPIPE_STUDY="$(abspath "${TRIALPIPE_STUDY:-study.toml}")"
TRIALPIPE_LANDING="$(abspath "${TRIALPIPE_LANDING:-landing}")"
TRIALPIPE_WAREHOUSE="$(abspath "${TRIALPIPE_WAREHOUSE:-warehouse}")"

say() { printf 'airflow-local | %s\n' "$*"; }

# --- the landing zone -------------------------------------------------------------------------------
if [[ ! -e "$TRIALPIPE_STUDY" ]]; then
    if [[ -d "$TRIALPIPE_LANDING" && -n "$(ls -A "$TRIALPIPE_LANDING")" ]]; then
        echo "airflow-local: $TRIALPIPE_STUDY not found but $TRIALPIPE_LANDING has files; set TRIALPIPE_STUDY" >&2
        exit 1
    fi
    say "no $TRIALPIPE_STUDY: simulating a demo study into $TRIALPIPE_LANDING"
    python - "$TRIALPIPE_LANDING" "$TRIALPIPE_STUDY" "${TRIALPIPE_DEMO_PATIENTS:-120}" <<'EOF'
import sys
from pathlib import Path

from pipeline.simulate import SimulationOptions, simulate_study

simulate_study(Path(sys.argv[1]), Path(sys.argv[2]), SimulationOptions(seed=2007, n_patients=int(sys.argv[3])))
EOF
fi
mkdir -p "$TRIALPIPE_LANDING" "$TRIALPIPE_WAREHOUSE" "$AIRFLOW_HOME"
say "study $TRIALPIPE_STUDY, landing zone $TRIALPIPE_LANDING, warehouse $TRIALPIPE_WAREHOUSE"

# --- the mail catcher -------------------------------------------------------------------------------
# The DAGs mail red flags, reports, data-quality flags and site queries, and fail loudly when there is
# no SMTP server. Locally, without one, a catcher takes each message into a Maildir, so the schedule runs
# green and shows what each role would receive. The recipients are placeholders; set them to try others.
mail_dir=""
if [[ -z "${TRIALPIPE_SMTP_HOST:-}" ]]; then
    mail_dir="$AIRFLOW_HOME/mail"
    mkdir -p "$mail_dir/tmp" "$mail_dir/new" "$mail_dir/cur"  # a Maildir (aiosmtpd creates none in an existing folder)
    export TRIALPIPE_SMTP_HOST=127.0.0.1 TRIALPIPE_SMTP_PORT="${TRIALPIPE_LOCAL_SMTP_PORT:-8025}"
    export TRIALPIPE_ALERT_EMAIL_TO="${TRIALPIPE_ALERT_EMAIL_TO:-physician@localhost}"
    export TRIALPIPE_REPORT_EMAIL_TO="${TRIALPIPE_REPORT_EMAIL_TO:-study-team@localhost}"
    export TRIALPIPE_DQ_EMAIL_TO="${TRIALPIPE_DQ_EMAIL_TO:-data-manager@localhost}"
    export TRIALPIPE_ALERT_EMAIL_FROM="${TRIALPIPE_ALERT_EMAIL_FROM:-trialpipe@localhost}"
    say "no TRIALPIPE_SMTP_HOST: mail goes to a local catcher on 127.0.0.1:$TRIALPIPE_SMTP_PORT," \
        "saved under $mail_dir/new/"
fi

# --- metadata DB and the writer pool ----------------------------------------------------------------
say "AIRFLOW_HOME $AIRFLOW_HOME: migrating the metadata DB"
if ! airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1; then
    tail -n 30 "$AIRFLOW_HOME/db-migrate.log" >&2
    exit 1
fi
airflow pools import "$repo/deploy/pools.json" >/dev/null

# --- the components ---------------------------------------------------------------------------------
# Each component runs in its own process group (set -m), so that a Ctrl-C reaches only this script,
# which then stops each component by its pid: a scheduler stops its LocalExecutor workers itself, and
# workers that get the signal too can leave it waiting for them.
pids=()  # api-server, scheduler, dag-processor, triggerer
catcher=()  # the mail catcher, when there is one: stopped last
stop_one() {
    # SIGTERM; again after 10 s (a scheduler then stops the tasks it waits for: retries are safe); then SIGKILL
    local pid=$1
    for _round in 1 2; do
        kill -TERM "$pid" 2>/dev/null || return 0
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.5
        done
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
}
stop() {
    trap - EXIT INT TERM
    trap '' PIPE
    say "stopping the components" 2>/dev/null || true
    # the scheduler first, while the api-server still takes its running tasks' reports; then the others
    if ((${#pids[@]} > 1)); then stop_one "${pids[1]}"; fi
    local waiting=()
    for i in 0 2 3; do
        if ((i < ${#pids[@]})); then
            stop_one "${pids[i]}" &
            waiting+=("$!")
        fi
    done
    if ((${#waiting[@]})); then wait "${waiting[@]}" 2>/dev/null || true; fi
    if ((${#catcher[@]})); then stop_one "${catcher[0]}"; fi
}
trap stop EXIT
trap 'stop; exit 130' INT TERM

prefix() { while IFS= read -r line; do printf '%-13s | %s\n' "$1" "$line"; done; }
start() {
    local name=$1
    shift
    "$@" > >(prefix "$name") 2>&1 &
    pids+=("$!")
}

set -m
if [[ -n "$mail_dir" ]]; then
    python -m aiosmtpd -n -l "127.0.0.1:$TRIALPIPE_SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$mail_dir" \
        > >(prefix mail-catcher) 2>&1 &
    catcher=("$!")
fi
start api-server airflow api-server --host 127.0.0.1 --port "$port"
start scheduler airflow scheduler --skip-serve-logs
start dag-processor airflow dag-processor
start triggerer airflow triggerer --skip-serve-logs
set +m

if python - "$port" <<'EOF'
import sys
import time
import urllib.request

url = f"http://127.0.0.1:{sys.argv[1]}/api/v2/monitor/health"
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(1)
sys.exit(1)
EOF
then
    say "Airflow is up: http://127.0.0.1:$port  (user admin, password in" \
        "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
else
    say "the api-server did not answer on 127.0.0.1:$port within 180 s" >&2
fi

# Stop everything as soon as one component ends.
while true; do
    for pid in "${pids[@]}" "${catcher[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "a component stopped (pid $pid); stopping the others"
            exit 1
        fi
    done
    sleep 2
done
