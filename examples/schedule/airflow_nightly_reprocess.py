"""Airflow DAG (2.x and 3.x): nightly ``kappalake reprocess`` of one UTC day, at 02:15 UTC.

An example only: kappalake does not depend on Airflow. Copy this file to the DAGs folder and
set TARGET below.

- ``local``: BashOperator tasks on the Airflow worker, in the checkout at LOCAL_REPO. Each task
  starts its own Spark driver: on a small worker, cap parallel ones with a pool.
- ``emr``: each table is an EMR step (command-runner.jar running spark-submit.sh) added to the
  running cluster EMR_CLUSTER_ID, plus a sensor waiting for it; needs
  apache-airflow-providers-amazon and the KAPPALAKE_* variables conf/emr.yaml reads in the
  steps' environment (docs/deploying.md, "Amazon EMR").

Run for day D (``{{ ds }}``): the schedule is an explicit CronDataIntervalTimetable, so the run
starting at D+1 02:15 has the data interval [D 02:15, D+1 02:15) and ``ds`` = D on Airflow 2 and 3
alike. (A plain cron string would be a CronTriggerTimetable on Airflow 3, where ``ds`` is the day
the run starts, i.e. today.)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.timetables.interval import CronDataIntervalTimetable

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

TARGET = "local"  # "local" or "emr"
LOCAL_REPO = "/opt/kappalake"
EMR_REPO = "/home/hadoop/kappalake"
EMR_CLUSTER_ID = "j-XXXXXXXXXXXXX"
AWS_CONN_ID = "aws_default"

SILVER = {"clickstream": "silver.clickstream", "telemetry": "silver.telemetry"}
GOLD = {  # gold tables by the silver table they read
    "clickstream": ["gold.page_minute", "gold.sessions", "gold.funnel_hourly", "gold.concurrent_viewers",
                    "gold.product_demand"],
    "telemetry": ["gold.device_minute", "gold.zone_occupancy", "gold.fleet_health"],
}


def reprocess_args(table: str) -> str:
    return f"reprocess --table {table} --day {{{{ ds }}}}"


if TARGET == "emr":
    from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator
    from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor

    def emr_step(table: str) -> dict:
        # Client deploy mode (spark-submit.sh's default): the driver runs in the step, so the step's
        # log shows the report and the step fails with the command's exit code.
        command = f"cd {EMR_REPO} && ./spark-submit.sh --profile emr -- {reprocess_args(table)}"
        return {"Name": f"kappalake reprocess {table} {{{{ ds }}}}", "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", command]}}


def reprocess(table: str):
    """The task(s) rebuilding ``table``: (first, last)."""
    task_id = table.replace(".", "_")
    if TARGET == "local":
        task = BashOperator(task_id=task_id, bash_command=f"cd {LOCAL_REPO} && .venv/bin/kappalake {reprocess_args(table)}")
        return task, task
    # A retry of the sensor only polls the same step again: to rerun a failed step, clear the
    # <table>_submit task (Clear, with downstream).
    submit = EmrAddStepsOperator(task_id=f"{task_id}_submit", job_flow_id=EMR_CLUSTER_ID, aws_conn_id=AWS_CONN_ID,
                                 steps=[emr_step(table)])
    wait = EmrStepSensor(task_id=task_id, job_flow_id=EMR_CLUSTER_ID, aws_conn_id=AWS_CONN_ID,
                         step_id=f"{{{{ ti.xcom_pull(task_ids='{task_id}_submit')[0] }}}}")
    submit >> wait
    return submit, wait


with DAG(
    dag_id="kappalake_nightly_reprocess",
    schedule=CronDataIntervalTimetable("15 2 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["kappalake"],
):
    for source, silver_table in SILVER.items():
        _, silver_done = reprocess(silver_table)
        for gold_table in GOLD[source]:
            gold_first, _ = reprocess(gold_table)
            silver_done >> gold_first
