"""Desired-state builders: pure functions from a profile to the objects it wants.

Each builder takes the profile's owner identity and parsed spec and returns ``Desired``
objects; none of them talks to the API server. Adding a kind to what a profile governs means
adding a builder here and naming its kind in ``hardening_operator.engine.kinds``.
"""

from __future__ import annotations

from collections.abc import Callable

from hardening_operator.api.v1alpha1 import HardeningProfileSpec
from hardening_operator.builders import (
    disruptionbudgets,
    limitranges,
    networkpolicies,
    podsecurity,
    quarantine,
    secretstores,
)
from hardening_operator.builders.common import Desired, Owner

Builder = Callable[[Owner, HardeningProfileSpec], list[Desired]]

BUILDERS: tuple[Builder, ...] = (
    networkpolicies.build,
    disruptionbudgets.build,
    secretstores.build,
    limitranges.build,
    podsecurity.build,
    quarantine.build,
)


def build_all(owner: Owner, spec: HardeningProfileSpec) -> list[Desired]:
    """Every object the profile wants, in a stable order."""
    return [desired for builder in BUILDERS for desired in builder(owner, spec)]
