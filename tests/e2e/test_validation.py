"""Invalid profiles are refused by the API server, naming the field, and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import profile, to_yaml


def _rule(**overrides: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": "web", "ingress": [{"ports": [{"port": 3000}]}]}
    rule.update(overrides)
    return rule


CASES = {
    "port out of range": (
        {"networkPolicy": {"rules": [_rule(ingress=[{"ports": [{"port": 70000}]}])]}},
        "spec.networkPolicy.rules[0].ingress[0].ports[0].port",
    ),
    "malformed CIDR": (
        {"networkPolicy": {"rules": [_rule(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}])]}},
        "spec.networkPolicy.rules[0].egress[0].to[0].ipBlock.cidr",
    ),
    "unknown mode": ({"mode": "Enforcing"}, "spec.mode"),
    "unknown field": ({"networkPolicy": {"defaultDenyAll": True}}, "spec.networkPolicy.defaultDenyAll"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_profile_is_refused_naming_the_field(cluster: Any, namespace: str,
                                                      case: str) -> None:
    spec, field = CASES[case]
    result = cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("bad", namespace, spec)),
                             check=False)
    assert result.returncode != 0, result.stdout
    assert field in result.stderr, result.stderr
    listed = cluster.kubectl("get", "hardeningprofiles,networkpolicies", "-n", namespace,
                             "-o", "name").stdout
    assert listed.strip() == ""
