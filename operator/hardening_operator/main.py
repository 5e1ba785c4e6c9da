"""Run the operator in this process, against the current kubeconfig or service account."""

from __future__ import annotations

import kopf

from hardening_operator import logs


def run(*, namespaces: list[str], peering: str | None = None, priority: int = 0,
        peering_lifetime: int | None = None, liveness: str | None = None,
        metrics_address: str | None = None, log_format: str | None = None,
        verbose: bool = False) -> int:
    logs.configure(json_lines=None if log_format is None else log_format == "json",
                   verbose=verbose)
    if metrics_address:
        from hardening_operator import metrics

        metrics.serve(metrics_address)
    # Importing the module registers the handlers with Kopf's default registry.
    from hardening_operator import controller  # noqa: F401

    kopf.run(
        standalone=peering is None,
        peering_name=peering,
        priority=priority,
        liveness_endpoint=liveness,
        clusterwide=not namespaces,
        namespaces=namespaces,
        memo=kopf.Memo(peering_lifetime=peering_lifetime),
    )
    return 0
