#!/usr/bin/env python3
"""Writes healthgate's Grafana dashboards (JSON for current Grafana).

One definition of the variables, the datasource and the panel defaults for all
three dashboards. Edit this file, run it, commit the JSON; a test fails when
the JSON and this script disagree:

    python3 grafana/dashboards/generate.py
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'
CHECK = SEL + ', check=~"$check"'
RATE = "$__rate_interval"


def variable(name, label, query, multi=True):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": multi,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


TEMPLATING = {
    "list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
        variable("job", "Job", "label_values(healthgate_build_info, job)"),
        variable("instance", "Instance", 'label_values(healthgate_build_info{job=~"$job"}, instance)'),
        variable("check", "Check", 'label_values(healthgate_check_up{job=~"$job", instance=~"$instance"}, check)'),
    ]
}

LINKS = [
    {"title": "healthgate", "type": "dashboards", "tags": ["healthgate"], "asDropdown": False,
     "includeVars": True, "keepTime": True},
]


def target(expr, legend="", fmt=None, instant=False):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": "A"}
    if fmt:
        t["format"] = fmt
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def panel(kind, title, description, targets, x, y, w, h, unit="short", thresholds=None, mappings=None, options=None):
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    steps = thresholds or [{"color": "green", "value": None}]
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}, "mappings": mappings or []},
            "overrides": [],
        },
        "options": options or {},
    }
    return p


def red_above(value):
    return [{"color": "green", "value": None}, {"color": "red", "value": value}]


STATUS_MAPPINGS = [
    {"type": "value", "options": {
        "0": {"text": "starting", "color": "blue", "index": 0},
        "1": {"text": "pass", "color": "green", "index": 1},
        "2": {"text": "warn", "color": "yellow", "index": 2},
        "3": {"text": "fail", "color": "red", "index": 3},
    }},
]


# The health score's bands (src/health/score.rs).
SCORE_BANDS = [{"color": "red", "value": None}, {"color": "orange", "value": 0.4},
               {"color": "yellow", "value": 0.7}, {"color": "green", "value": 0.9}]


def dashboard(uid, title, description, panels):
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["healthgate"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": TEMPLATING,
        "links": LINKS,
        "panels": panels,
    }


FLEET = dashboard("healthgate-fleet", "healthgate / Fleet overview",
    "Every healthgate sidecar: verdicts now and over time, failing checks, flapping, latency, failure categories, certificates.", [
    panel("stat", "Ready instances", "Instances whose /readyz answers 200 now.",
          [target(f'count(healthgate_ready{{{SEL}}} == 1) or vector(0)', instant=True)], 0, 0, 6, 4),
    panel("stat", "Not ready (started)", "Started instances whose /readyz answers 503: they receive no traffic. Alert: HealthgateInstanceNotReady.",
          [target(f'count(healthgate_ready{{{SEL}}} == 0 and healthgate_started{{{SEL}}} == 1) or vector(0)', instant=True)],
          6, 0, 6, 4, thresholds=red_above(1)),
    panel("stat", "Not started", "Instances whose critical startup checks have not all passed yet.",
          [target(f'count(healthgate_started{{{SEL}}} == 0) or vector(0)', instant=True)], 12, 0, 6, 4,
          thresholds=[{"color": "green", "value": None}, {"color": "yellow", "value": 1}]),
    panel("stat", "Liveness failing", "Instances whose /livez answers 503 (the orchestrator restarts them).",
          [target(f'count(healthgate_live{{{SEL}}} == 0) or vector(0)', instant=True)], 18, 0, 6, 4, thresholds=red_above(1)),
    panel("timeseries", "Instances by verdict", "Ready, not ready and not started instances over time.",
          [target(f'sum(healthgate_ready{{{SEL}}})', "ready"),
           target(f'count(healthgate_ready{{{SEL}}} == 0) or vector(0)', "not ready"),
           target(f'count(healthgate_started{{{SEL}}} == 0) or vector(0)', "not started")], 0, 4, 12, 8),
    panel("table", "Checks failing now", "Checks in fail or warn now: for how long (since their status last changed), their consecutive failed runs, and the failure category of recent runs.",
          [target(f'time() - healthgate_check_last_change_seconds{{{SEL}}} and on (instance, check) (healthgate_check_status{{{SEL}, status=~"fail|warn"}} == 1)', fmt="table", instant=True),
           target(f'healthgate_check_consecutive_failures{{{SEL}}} > 0', fmt="table", instant=True),
           target(f'sum by (instance, check, category) (increase(healthgate_check_runs_total{{{SEL}, result="fail"}}[15m])) > 0', fmt="table", instant=True)],
          12, 4, 12, 8, unit="s", options={"showHeader": True}),
    panel("timeseries", "Status changes per check", "Transitions of each check's status; many means flapping. Alert: HealthgateCheckFlapping.",
          [target(f'sum by (check) (increase(healthgate_check_transitions_total{{{SEL}}}[{RATE}]))', "{{check}}")], 0, 12, 12, 8),
    panel("timeseries", "Probe latency p50 / p95 / p99", "Run time quantiles by check, from the duration histogram. Alert: HealthgateProbeSlow (p95 > 1 s).",
          [target(f'histogram_quantile({q}, sum by (check, le) (rate(healthgate_check_duration_seconds_bucket{{{SEL}}}[{RATE}])))', f"{{{{check}}}} p{int(q * 100)}")
           for q in (0.5, 0.95, 0.99)], 12, 12, 12, 8, unit="s"),
    panel("timeseries", "Failures by category", "Failed runs per second by failure category (dns, connect_refused, timeout, tls, status_mismatch, ...).",
          [target(f'sum by (category) (rate(healthgate_check_runs_total{{{SEL}, result="fail"}}[{RATE}]))', "{{category}}")], 0, 20, 12, 8, unit="ops"),
    panel("bargauge", "Certificates expiring soonest", "Time left on the earliest-expiring certificate each https check sees. Alerts: < 14 d warning, < 3 d critical.",
          [target(f'bottomk(10, min by (check) (healthgate_tls_cert_not_after_seconds{{{SEL}}}) - time())', "{{check}}", instant=True)],
          12, 20, 12, 8, unit="s",
          thresholds=[{"color": "red", "value": None}, {"color": "yellow", "value": 259200}, {"color": "green", "value": 1209600}]),
    panel("timeseries", "Health score", "Each instance's health score, 0 to 1 (weighted by check weight and criticality; capped at 0.69 while a critical check fails): healthy >= 0.9, degraded >= 0.7, unhealthy >= 0.4, critical below.",
          [target(f'healthgate_health_score{{{SEL}}}', "{{instance}}")], 0, 28, 12, 8, unit="percentunit",
          thresholds=SCORE_BANDS, options={"legend": {"displayMode": "list"}}),
    panel("bargauge", "Lowest health scores", "The ten instances with the lowest health score now.",
          [target(f'bottomk(10, healthgate_health_score{{{SEL}}})', "{{instance}}", instant=True)],
          12, 28, 12, 8, unit="percentunit", thresholds=SCORE_BANDS),
])

CHECK_DETAIL = dashboard("healthgate-check", "healthgate / Check detail",
    "One check across instances: status timeline, latency, runs by result and category, HTTP status, consecutive failures, certificate.", [
    panel("state-timeline", "Status", "The check's status on each instance: starting, pass, warn (non-critical failing), fail.",
          [target(f'sum by (instance) (healthgate_check_status{{{CHECK}, status="pass"}}) + 2 * sum by (instance) (healthgate_check_status{{{CHECK}, status="warn"}}) + 3 * sum by (instance) (healthgate_check_status{{{CHECK}, status="fail"}})', "{{instance}}")],
          0, 0, 24, 7, mappings=STATUS_MAPPINGS),
    panel("heatmap", "Latency", "Distribution of run times (all selected instances).",
          [target(f'sum by (le) (rate(healthgate_check_duration_seconds_bucket{{{CHECK}}}[{RATE}]))', "{{le}}", fmt="heatmap")],
          0, 7, 12, 8, unit="s", options={"calculate": False, "yAxis": {"unit": "s"}}),
    panel("timeseries", "Runs by result and category", "Runs per second: passes, and failures by category.",
          [target(f'sum by (result, category) (rate(healthgate_check_runs_total{{{CHECK}}}[{RATE}]))', "{{result}} {{category}}")],
          12, 7, 12, 8, unit="ops"),
    panel("timeseries", "Last HTTP status", "HTTP status of the last response (http checks).",
          [target(f'healthgate_http_status_code{{{CHECK}}}', "{{instance}}")], 0, 15, 8, 8,
          thresholds=[{"color": "green", "value": None}, {"color": "yellow", "value": 300}, {"color": "red", "value": 500}]),
    panel("timeseries", "Consecutive failures", "Failed runs in a row, counted toward failure_threshold.",
          [target(f'healthgate_check_consecutive_failures{{{CHECK}}}', "{{instance}}")], 8, 15, 8, 8, thresholds=red_above(3)),
    panel("stat", "Certificate expires in", "Time left on the earliest-expiring certificate the check sees (https checks).",
          [target(f'min(healthgate_tls_cert_not_after_seconds{{{CHECK}}}) - time()', instant=True)], 16, 15, 8, 8, unit="s",
          thresholds=[{"color": "red", "value": None}, {"color": "yellow", "value": 259200}, {"color": "green", "value": 1209600}]),
])

SIDECAR = dashboard("healthgate-sidecar", "healthgate / The sidecar itself",
    "healthgate's own health: config reloads, telemetry drops, versions across the fleet, CPU and memory, and what it did about health: notifications, actions, events dropped.", [
    panel("timeseries", "Config reloads", "Reloads applied (success) and rejected (failure; the previous config kept running). Alert: HealthgateConfigReloadFailing.",
          [target(f'sum by (result) (increase(healthgate_config_reloads_total{{{SEL}}}[{RATE}]))', "{{result}}")], 0, 0, 12, 8),
    panel("table", "Last config load", "Per instance: whether the last config load succeeded, and how long ago one last did.",
          [target(f'healthgate_config_last_reload_successful{{{SEL}}}', fmt="table", instant=True),
           target(f'time() - healthgate_config_last_reload_success_time_seconds{{{SEL}}}', fmt="table", instant=True)],
          12, 0, 12, 8, unit="s"),
    panel("timeseries", "Telemetry dropped", "Metric data points and spans that could not be exported over OTLP. Alert: HealthgateTelemetryDropping.",
          [target(f'sum by (signal) (rate(healthgate_telemetry_dropped_total{{{SEL}}}[{RATE}]))', "{{signal}}")], 0, 8, 12, 8, unit="ops"),
    panel("table", "Versions", "healthgate versions running across the fleet, and on how many instances.",
          [target(f'count by (version) (healthgate_build_info{{{SEL}}})', fmt="table", instant=True)], 12, 8, 12, 8),
    panel("timeseries", "CPU", "CPU used by each healthgate process, in cores.",
          [target(f'rate(healthgate_process_cpu_time_seconds_total{{{SEL}}}[{RATE}])', "{{instance}}")], 0, 16, 12, 8,
          thresholds=[{"color": "green", "value": None}, {"color": "yellow", "value": 0.1}]),
    panel("timeseries", "Memory", "Resident memory of each healthgate process.",
          [target(f'healthgate_process_memory_rss_bytes{{{SEL}}}', "{{instance}}")], 12, 16, 12, 8, unit="bytes",
          thresholds=[{"color": "green", "value": None}, {"color": "yellow", "value": 134217728}]),
    panel("timeseries", "Notifications", "Notifications by notifier and result: delivered, failed (every attempt failed, or refused), coalesced (held by min_interval, nothing new to send). Alert: HealthgateNotifierFailing.",
          [target(f'sum by (notifier, result) (increase(healthgate_notifications_total{{{SEL}}}[{RATE}]))', "{{notifier}} {{result}}")],
          0, 24, 12, 8),
    panel("timeseries", "Actions", "on_failure, on_recovery and restart runs by check (or verdict) and result: ok, failed, timeout, rate_limited, busy.",
          [target(f'sum by (check, verdict, action, result) (increase(healthgate_actions_total{{{SEL}}}[{RATE}]))', "{{check}}{{verdict}} {{action}} {{result}}")],
          12, 24, 12, 8),
    panel("timeseries", "Events dropped", "Events a consumer could not take: a notifier's or the actions' full queue, or an event stream client cut off as too slow (sse).",
          [target(f'sum by (consumer) (rate(healthgate_events_dropped_total{{{SEL}}}[{RATE}]))', "{{consumer}}")],
          0, 32, 12, 8, unit="ops"),
    panel("timeseries", "Event queues", "Events waiting in each consumer's queue; one staying high is a receiver slower than the changes it is told of.",
          [target(f'max by (consumer) (healthgate_events_queued{{{SEL}}})', "{{consumer}}")],
          12, 32, 12, 8),
])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for name, board in (("fleet.json", FLEET), ("check.json", CHECK_DETAIL), ("sidecar.json", SIDECAR)):
        with open(os.path.join(here, name), "w") as f:
            json.dump(board, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
