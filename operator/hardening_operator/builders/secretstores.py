"""External Secrets Operator SecretStores: the provider block is passed through as is.

The operator does not second-guess ESO's schema: ESO's CRD validates the provider, and a
store it refuses is reported on the profile like any other refused object.
"""

from __future__ import annotations

import copy

from hardening_operator.api.v1alpha1 import HardeningProfileSpec
from hardening_operator.builders.common import Desired, Owner, child_metadata

#: The version written by the builder; the engine re-targets it to the served version.
API_VERSION = "external-secrets.io/v1"


def build(owner: Owner, spec: HardeningProfileSpec) -> list[Desired]:
    return [
        Desired(
            body={
                "apiVersion": API_VERSION,
                "kind": "SecretStore",
                "metadata": child_metadata(owner, store.name),
                "spec": {"provider": copy.deepcopy(store.provider)},
            },
            section="secretStores",
        )
        for store in spec.secret_stores
    ]
