"""A corpus of malformed profiles: the API server refuses each one, naming the field.

Every file in ``malformed/`` is one HardeningProfile with one thing wrong. Its first line
says what, and its second, ``# field: <path>``, the path that the API server's message must
name. A refusal that names some other field would send a user to the wrong line, so the
path has to appear as the subject of an error (followed by ``:``, or quoted as an unknown
field), not merely as the prefix of some longer path.

A profile the CRD lets through is a gap in ``api/v1alpha1.py``: the operator then meets it
at run time, and the profile turns Failed instead of never being stored. The known gaps are
listed in ``KNOWN_GAPS`` with what the child's own API says; they are expected to fail until
the model learns the rule. Such a profile must at least get a status that says what failed,
which the last test checks for the gap where the API server answers 500.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.helpers import GROUP, PLURAL, VERSION

CORPUS = Path(__file__).resolve().parent / "malformed"
FIELD_PREFIX = "# field: "

#: Cases the CRD does not refuse yet, with the reason; each is an xfail until it does.
KNOWN_GAPS: dict[str, str] = {}


def _cases() -> list[Any]:
    cases: list[Any] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        gap = KNOWN_GAPS.get(path.name)
        marks = [pytest.mark.xfail(reason=gap, strict=False)] if gap else []
        cases.append(pytest.param(path.name, marks=marks, id=path.stem))
    return cases


def _expected_field(path: Path) -> str:
    lines = path.read_text().splitlines()
    assert len(lines) > 2 and lines[0].startswith("# ") and lines[1].startswith(FIELD_PREFIX), (
        f"{path.name} must open with a comment saying what is wrong, then {FIELD_PREFIX!r}")
    return lines[1].removeprefix(FIELD_PREFIX).strip()


def _names_field(message: str, field: str) -> bool:
    """Whether ``message`` reports an error on exactly ``field``."""
    return re.search(r'(?:^|[\s"])' + re.escape(field) + r'[:"]', message, re.M) is not None


def test_the_corpus_is_well_formed() -> None:
    paths = sorted(CORPUS.glob("*.yaml"))
    assert len(paths) >= 30
    for path in paths:
        _expected_field(path)
        body = yaml.safe_load(path.read_text())
        assert (body["apiVersion"], body["kind"]) == ("hardening.plumbing.ai/v1alpha1",
                                                      "HardeningProfile"), path.name
        # The test chooses the namespace; a file naming one would be applied elsewhere.
        assert "namespace" not in body["metadata"], path.name
    assert set(KNOWN_GAPS) <= {p.name for p in paths}


def _objects_in(api: Any, namespace: str) -> list[str]:
    """The profiles, and what the operator could have made of one, in a namespace."""
    found = [f"HardeningProfile/{p['metadata']['name']}" for p in kubernetes.client
             .CustomObjectsApi(api).list_namespaced_custom_object(
                 GROUP, VERSION, namespace, PLURAL)["items"]]
    for kind, listing in (
        ("NetworkPolicy", kubernetes.client.NetworkingV1Api(api).list_namespaced_network_policy),
        ("PodDisruptionBudget",
         kubernetes.client.PolicyV1Api(api).list_namespaced_pod_disruption_budget),
        ("LimitRange", kubernetes.client.CoreV1Api(api).list_namespaced_limit_range),
    ):
        found += [f"{kind}/{item.metadata.name}" for item in listing(namespace).items]
    return found


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize("case", _cases())
def test_malformed_profile_is_refused_naming_the_field(cluster: Any, api: Any, namespace: str,
                                                       case: str) -> None:
    path = CORPUS / case
    field = _expected_field(path)
    result = cluster.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode != 0, f"the API server accepted it: {result.stdout.strip()}"
    assert _names_field(result.stderr, field), f"expected {field} in: {result.stderr.strip()}"
    assert _objects_in(api, namespace) == []
