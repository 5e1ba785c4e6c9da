"""Prometheus metrics of the operator, served on ``--metrics-address``.

Counters carry the namespace where it helps to find the profile at fault; the duration
histogram does not, so that its series do not multiply with the namespaces.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "hardening_reconciles_total", "Reconcile passes over profiles, by outcome.",
    ["namespace", "result"])
RECONCILE_SECONDS = Histogram(
    "hardening_reconcile_duration_seconds", "How long one reconcile pass took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DRIFT = Counter(
    "hardening_drift_detected_total", "Generated objects found changed by someone else.",
    ["namespace", "kind"])
REPAIRS = Counter(
    "hardening_repairs_total", "Drifted objects the operator put back.", ["namespace", "kind"])
ERRORS = Counter(
    "hardening_errors_total",
    "Objects the API server refused, and reconcile passes that failed.",
    ["namespace", "kind"])
QUARANTINED = Gauge(
    "hardening_quarantined_pods", "Pods carrying the quarantine label that policy isolates.",
    ["namespace"])


def serve(address: str) -> None:
    """Serve /metrics on ``host:port`` in a background thread."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0")
