"""The ``hardening-operator`` command: run the operator, or a local control plane."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hardening-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument("--namespace", "-n", action="append", default=[],
                     help="watch only this namespace (repeatable); default: all namespaces")
    run.add_argument("--peering", metavar="NAME",
                     help="coordinate with other replicas through this KopfPeering object")
    run.add_argument("--priority", type=int, default=0, help="peering priority of this replica")
    run.add_argument("--peering-lifetime", type=int, default=None, metavar="SECONDS",
                     help="how long a silent peer counts as alive (Kopf's default: 60)")
    run.add_argument("--metrics-address", metavar="HOST:PORT",
                     help="serve Prometheus metrics, e.g. 0.0.0.0:9090; default: off")
    run.add_argument("--liveness", metavar="URL",
                     help="serve the liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--log-format", choices=("console", "json"), default=None,
                     help="log lines for people (console) or machines (json); default: json "
                          "when not on a terminal")
    run.add_argument("--verbose", "-v", action="store_true", help="log debug messages too")

    cluster = commands.add_parser("cluster", help="a local control plane for development")
    cluster_commands = cluster.add_subparsers(dest="cluster_command", required=True)
    cluster_commands.add_parser("up", help="start it (building binaries on first use)")
    cluster_commands.add_parser("down", help="stop it and remove its data")

    commands.add_parser("dev", help="local control plane + CRDs + samples + operator, "
                                    "in the foreground (what `make run` does)")
    commands.add_parser("crd", help="print the generated CustomResourceDefinition")

    args = parser.parse_args(argv)
    if args.command == "run":
        from hardening_operator import main as operator_main
        return operator_main.run(
            namespaces=args.namespace, peering=args.peering, priority=args.priority,
            peering_lifetime=args.peering_lifetime, liveness=args.liveness,
            metrics_address=args.metrics_address, log_format=args.log_format,
            verbose=args.verbose)
    if args.command == "cluster":
        from hardening_operator.controlplane import cluster as control_plane
        state_dir = control_plane.default_state_dir()
        if args.cluster_command == "up":
            local = control_plane.up(state_dir)
            print(f"export KUBECONFIG={local.kubeconfig}")
            return 0
        if not control_plane.down(state_dir):
            print("No local control plane was running.", file=sys.stderr)
        return 0
    if args.command == "dev":
        from hardening_operator import dev
        return dev.main()
    if args.command == "crd":
        from hardening_operator.api.crd import render
        sys.stdout.write(render())
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
