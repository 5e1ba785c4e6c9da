"""The ``HardeningProfile`` API, version ``v1alpha1``.

These pydantic models are the single source of truth for the custom resource: the operator
parses every spec with them, and ``hardening_operator.api.crd`` generates the committed CRD
schema from them (descriptions, bounds, enums and the CEL rules that tie fields together).
A rule that only the operator checked would let the API server store a profile that the
operator then has to refuse; keeping the rules here means the API server refuses it first,
with a message that names the field.

Defaults live in the models, not in the CRD schema: the API server would otherwise write them
into every stored object, where they show up in GitOps diffs as changes nobody made.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "hardening.plumbing.ai"
VERSION = "v1alpha1"
KIND = "HardeningProfile"
PLURAL = "hardeningprofiles"
SINGULAR = "hardeningprofile"
SHORT_NAMES = ["hp", "hardening"]
#: A profile's name is a label value on each of its children, so it has a label value's limit.
MAX_NAME_LENGTH = 63

#: Names of generated NetworkPolicies that the rules of a profile may not take.
RESERVED_POLICY_NAMES = ("default-deny", "allow-dns", "quarantine")

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# An IANA service name, as NetworkPolicy checks it: no double dash, at least one letter.
_PORT_NAME = "^[a-z0-9]+(-[a-z0-9]+)*$"
# A qualified label key: an optional DNS-subdomain prefix and a name of up to 63 characters.
_LABEL_KEY_RULE = (
    "self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))"
)
_LABEL_VALUE_RULE = (
    "self.all(k, self[k].matches('^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$'))"
)


def _cel(rule: str, message: str, *, field_path: str | None = None) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def _rules(*entries: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(entries)}


class _Model(BaseModel):
    # Unknown fields are refused by the operator as they are by the API server's pruning
    # of a structural schema; ``populate_by_name`` lets Python code use the snake names.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --------------------------------------------------------------------------------------------
# Selectors and peers, shaped like their Kubernetes counterparts so that they read the same.


class LabelSelectorRequirement(_Model):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
                ": (!has(self.values) || size(self.values) == 0)",
                "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
                field_path=".values",
            ),
        ),
    )

    key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=317,
            description="The label key that the requirement applies to.",
        ),
    ]
    operator: Annotated[
        Literal["In", "NotIn", "Exists", "DoesNotExist"],
        Field(description="How the key relates to the values."),
    ]
    values: Annotated[
        list[Annotated[str, Field(max_length=63)]],
        Field(
            default_factory=list,
            max_length=64,
            description="The values for In and NotIn; empty for Exists and DoesNotExist.",
        ),
    ]


class LabelSelector(_Model):
    """A label selector as Kubernetes writes it.

    Label keys and values are checked by the NetworkPolicy API when the operator applies a
    policy, and reported on the profile when refused. The CRD checks them up front only on
    the selectors of pods in the profile's own namespace: CEL rules on map keys cost too
    much in the API server's estimate to repeat on every peer of every rule.
    """

    match_labels: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]],
        Field(
            alias="matchLabels",
            default_factory=dict,
            max_length=32,
            description="Labels that an object must carry, each with exactly this value.",
        ),
    ]
    match_expressions: Annotated[
        list[LabelSelectorRequirement],
        Field(
            alias="matchExpressions",
            default_factory=list,
            max_length=16,
            description="Requirements on labels; all of them must hold.",
        ),
    ]

    def to_k8s(self) -> dict[str, Any]:
        selector: dict[str, Any] = {}
        if self.match_labels:
            selector["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            selector["matchExpressions"] = [
                {"key": e.key, "operator": e.operator, **({"values": list(e.values)} if e.values else {})}
                for e in self.match_expressions
            ]
        return selector


class CheckedLabelSelectorRequirement(LabelSelectorRequirement):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            *LabelSelectorRequirement.model_config["json_schema_extra"]["x-kubernetes-validations"],
            _cel(_LABEL_KEY_RULE.replace("self.all(k, k.", "self.key.").removesuffix(")"),
                 "label keys must be qualified names such as app or example.com/tier",
                 field_path=".key"),
        ),
    )

    values: Annotated[
        list[Annotated[str, Field(max_length=63, json_schema_extra=_rules(_cel(
            "self.matches('^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$')",
            "label values must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit")))]],
        Field(
            default_factory=list,
            max_length=32,
            description="The values for In and NotIn; empty for Exists and DoesNotExist.",
        ),
    ]


class CheckedLabelSelector(LabelSelector):
    """A label selector whose label keys and values the API server checks on admission."""

    match_expressions: Annotated[
        list[CheckedLabelSelectorRequirement],
        Field(
            alias="matchExpressions",
            default_factory=list,
            max_length=16,
            description="Requirements on labels; all of them must hold.",
        ),
    ]

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel("!has(self.matchLabels) || " + _LABEL_KEY_RULE.replace("self.all", "self.matchLabels.all"),
                 "label keys must be qualified names such as app or example.com/tier",
                 field_path=".matchLabels"),
            _cel("!has(self.matchLabels) || " + _LABEL_VALUE_RULE.replace("self.all", "self.matchLabels.all").replace("self[k]", "self.matchLabels[k]"),
                 "label values must be at most 63 letters, digits, '-', '_' or '.', "
                 "starting and ending with a letter or digit",
                 field_path=".matchLabels"),
        ),
    )


class IPBlock(_Model):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "!has(self.except) || !isCIDR(self.cidr) || self.except.all(e, !isCIDR(e) || "
                "(e != self.cidr && cidr(self.cidr).containsCIDR(e)))",
                "every except range must lie strictly inside cidr",
                field_path=".except",
            ),
        ),
    )

    cidr: Annotated[
        str,
        Field(
            max_length=43,
            description="An IPv4 or IPv6 range in CIDR notation, such as 10.0.0.0/8.",
            json_schema_extra=_rules(
                _cel("isCIDR(self)", "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
            ),
        ),
    ]
    except_: Annotated[
        list[
            Annotated[
                str,
                Field(
                    max_length=43,
                    json_schema_extra=_rules(
                        _cel("isCIDR(self)", "must be a CIDR such as 10.1.0.0/16"),
                    ),
                ),
            ]
        ],
        Field(
            alias="except",
            default_factory=list,
            max_length=16,
            description="Ranges inside cidr that the peer does not include.",
        ),
    ]


class Peer(_Model):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "has(self.ipBlock) || has(self.namespaceSelector) || has(self.podSelector)",
                "a peer needs an ipBlock, a namespaceSelector or a podSelector",
            ),
            _cel(
                "!has(self.ipBlock) || !(has(self.namespaceSelector) || has(self.podSelector))",
                "an ipBlock cannot be combined with a namespaceSelector or a podSelector",
            ),
        ),
    )

    namespace_selector: Annotated[
        LabelSelector | None,
        Field(
            alias="namespaceSelector",
            default=None,
            description="Namespaces whose pods are the peer; {} means every namespace.",
        ),
    ]
    pod_selector: Annotated[
        LabelSelector | None,
        Field(
            alias="podSelector",
            default=None,
            description=(
                "Pods that are the peer: in the profile's namespace, or in the namespaces "
                "that namespaceSelector picks."
            ),
        ),
    ]
    ip_block: Annotated[
        IPBlock | None,
        Field(alias="ipBlock", default=None, description="An IP range that is the peer."),
    ]

    def to_k8s(self) -> dict[str, Any]:
        peer: dict[str, Any] = {}
        if self.namespace_selector is not None:
            peer["namespaceSelector"] = self.namespace_selector.to_k8s()
        if self.pod_selector is not None:
            peer["podSelector"] = self.pod_selector.to_k8s()
        if self.ip_block is not None:
            block: dict[str, Any] = {"cidr": self.ip_block.cidr}
            if self.ip_block.except_:
                block["except"] = list(self.ip_block.except_)
            peer["ipBlock"] = block
        return peer


class Port(_Model):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "!has(self.endPort) || (has(self.port) && type(self.port) == int "
                "&& self.endPort >= self.port)",
                "endPort needs a numeric port and must not be below it",
                field_path=".endPort",
            ),
        ),
    )

    port: Annotated[
        int | str | None,
        Field(
            default=None,
            description=(
                "A port number (1-65535) or a named container port. Left out, the rule "
                "covers every port of the protocol."
            ),
            json_schema_extra={
                "x-kubernetes-int-or-string": True,
                "maxLength": 15,
                **_rules(
                    _cel(
                        "type(self) == int ? (self >= 1 && self <= 65535) : "
                        f"(size(self) <= 15 && self.matches('{_PORT_NAME}') && self.matches('[a-z]'))",
                        "must be a port number from 1 to 65535 or a port name of at most "
                        "15 lower-case letters, digits and single dashes, with at least one letter",
                    ),
                ),
            },
        ),
    ]
    end_port: Annotated[
        int | None,
        Field(
            alias="endPort",
            default=None,
            ge=1,
            le=65535,
            description="The last port of a range that starts at port.",
        ),
    ]
    protocol: Annotated[
        Literal["TCP", "UDP", "SCTP"],
        Field(default="TCP", description="The protocol; TCP when left out."),
    ]

    def to_k8s(self) -> dict[str, Any]:
        port: dict[str, Any] = {"protocol": self.protocol}
        if self.port is not None:
            port["port"] = self.port
        if self.end_port is not None:
            port["endPort"] = self.end_port
        return port


class IngressRule(_Model):
    from_: Annotated[
        list[Peer],
        Field(
            alias="from",
            default_factory=list,
            max_length=16,
            description="Where traffic may come from; empty means from anywhere.",
        ),
    ]
    ports: Annotated[
        list[Port],
        Field(
            default_factory=list,
            max_length=32,
            description="The ports it may reach; empty means every port.",
        ),
    ]


class EgressRule(_Model):
    to: Annotated[
        list[Peer],
        Field(
            default_factory=list,
            max_length=16,
            description="Where traffic may go; empty means anywhere.",
        ),
    ]
    ports: Annotated[
        list[Port],
        Field(
            default_factory=list,
            max_length=32,
            description="The ports it may reach; empty means every port.",
        ),
    ]


class AllowRule(_Model):
    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            pattern=_DNS_LABEL,
            description=(
                "The name of the NetworkPolicy made for this rule. default-deny, allow-dns "
                "and quarantine are taken by the operator's own policies."
            ),
            json_schema_extra=_rules(
                _cel(
                    "!(self in " + repr(list(RESERVED_POLICY_NAMES)).replace('"', "'") + ")",
                    "is a name the operator uses for its own policies",
                ),
            ),
        ),
    ]
    pod_selector: Annotated[
        CheckedLabelSelector,
        Field(
            alias="podSelector",
            default_factory=CheckedLabelSelector,
            description=(
                "The pods of the profile's namespace that the rule opens up; {} means all "
                "of them."
            ),
        ),
    ]
    ingress: Annotated[
        list[IngressRule],
        Field(default_factory=list, max_length=8, description="Traffic the pods accept."),
    ]
    egress: Annotated[
        list[EgressRule],
        Field(default_factory=list, max_length=8, description="Traffic the pods may send."),
    ]


class NetworkPolicySection(_Model):
    default_deny: Annotated[
        bool,
        Field(
            alias="defaultDeny",
            default=True,
            description=(
                "Deny all ingress and egress of the covered pods that no rule allows. "
                "Default: true."
            ),
        ),
    ]
    allow_dns: Annotated[
        bool,
        Field(
            alias="allowDNS",
            default=True,
            description=(
                "Let the covered pods reach kube-dns in kube-system on UDP and TCP port 53. "
                "Default: true."
            ),
        ),
    ]
    rules: Annotated[
        list[AllowRule],
        Field(
            default_factory=list,
            max_length=32,
            description="Allow rules, each made into a NetworkPolicy of its own name.",
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
        ),
    ]


_INT_OR_PERCENT = {
    "x-kubernetes-int-or-string": True,
    "maxLength": 4,
    **_rules(
        _cel(
            "type(self) == int ? (self >= 0 && self <= 2147483647) : self.matches('^(100|[1-9]?[0-9])%$')",
            "must be a non-negative number of pods or a percentage from 0% to 100%",
        ),
    ),
}


class DisruptionBudget(_Model):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                "has(self.minAvailable) != has(self.maxUnavailable)",
                "set exactly one of minAvailable and maxUnavailable",
            ),
        ),
    )

    name: Annotated[
        str,
        Field(min_length=1, max_length=63, pattern=_DNS_LABEL,
              description="The name of the PodDisruptionBudget."),
    ]
    selector: Annotated[
        CheckedLabelSelector,
        Field(description="The pods the budget protects."),
    ]
    min_available: Annotated[
        int | str | None,
        Field(alias="minAvailable", default=None, json_schema_extra=_INT_OR_PERCENT,
              description="Pods that must stay available during evictions: a number or a "
                          "percentage such as 50%."),
    ]
    max_unavailable: Annotated[
        int | str | None,
        Field(alias="maxUnavailable", default=None, json_schema_extra=_INT_OR_PERCENT,
              description="Pods that may be unavailable during evictions: a number or a "
                          "percentage such as 25%."),
    ]


class SecretStore(_Model):
    name: Annotated[
        str,
        Field(min_length=1, max_length=63, pattern=_DNS_LABEL,
              description="The name of the External Secrets Operator SecretStore."),
    ]
    provider: Annotated[
        dict[str, Any],
        Field(
            description=(
                "The store's provider block, passed through to the SecretStore as is (for "
                "example aws: {service: SecretsManager, region: us-west-2, auth: ...}). "
                "External Secrets Operator's own schema validates it."
            ),
            json_schema_extra={
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "maxProperties": 1,
                "minProperties": 1,
            },
        ),
    ]


PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


class PodSecurityMode(_Model):
    level: Annotated[
        PodSecurityLevel,
        Field(description="The Pod Security Standard: privileged, baseline or restricted."),
    ]
    version: Annotated[
        str,
        Field(
            default="latest",
            max_length=8,
            pattern=r"^(latest|v1\.[0-9]{1,2})$",
            description="The Kubernetes minor version of the standard, such as v1.35, or "
                        "latest (the default).",
        ),
    ]


class PodSecurity(_Model):
    enforce: Annotated[
        PodSecurityMode | None,
        Field(default=None, description="Pods that violate this level are refused."),
    ]
    audit: Annotated[
        PodSecurityMode | None,
        Field(default=None, description="Violations of this level are written to the audit log."),
    ]
    warn: Annotated[
        PodSecurityMode | None,
        Field(default=None, description="Violations of this level are warned about to the client."),
    ]


_QUANTITY = _rules(_cel("isQuantity(self) && !self.startsWith('-')",
                        "must be a non-negative quantity such as 250m, 1 or 512Mi"))


class Resources(_Model):
    cpu: Annotated[
        str | None,
        Field(default=None, max_length=16, json_schema_extra=_QUANTITY,
              description="CPU, such as 250m or 1."),
    ]
    memory: Annotated[
        str | None,
        Field(default=None, max_length=16, json_schema_extra=_QUANTITY,
              description="Memory, such as 512Mi or 2Gi."),
    ]

    def to_k8s(self) -> dict[str, str]:
        return {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v is not None}


class ResourceDefaults(_Model):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            *(
                _cel(
                    f"!has(self.requests) || !has(self.limits) || !has(self.requests.{r}) || "
                    f"!has(self.limits.{r}) || "
                    f"quantity(self.requests.{r}).compareTo(quantity(self.limits.{r})) <= 0",
                    f"requests.{r} must not exceed limits.{r}",
                    field_path=f".requests.{r}",
                )
                for r in ("cpu", "memory")
            ),
        ),
    )

    requests: Annotated[
        Resources | None,
        Field(default=None, description="Requests given to containers that set none."),
    ]
    limits: Annotated[
        Resources | None,
        Field(default=None, description="Limits given to containers that set none."),
    ]


#: The label key whose presence the operator watches pods for. One key for the whole cluster
#: keeps the on-call command the same in every namespace and lets a single server-side
#: label selector stream exactly the labelled pods; a profile chooses the value.
QUARANTINE_LABEL_KEY = "quarantine"


class Quarantine(_Model):
    enabled: Annotated[
        bool,
        Field(default=True, description=(
            "Keep pods labelled quarantine=<value> cut off. Default: true, also when the "
            "section is left out.")),
    ]
    value: Annotated[
        str,
        Field(default="true", min_length=1, max_length=63,
              pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
              description=(
                  "The value of the quarantine label that isolates a pod: "
                  "kubectl label pod NAME quarantine=<value>. Default: true.")),
    ]
    allow_from: Annotated[
        list[Peer],
        Field(alias="allowFrom", default_factory=list, max_length=8, description=(
            "Peers that may still reach quarantined pods, for forensics (for example a "
            "security tooling namespace). Nothing else gets in or out.")),
    ]


class HardeningProfileSpec(_Model):
    mode: Annotated[
        Literal["Enforce", "Audit"],
        Field(
            default="Enforce",
            description=(
                "Enforce creates the generated objects and repairs drift at once; Audit "
                "never writes to them and only reports drift. Default: Enforce."
            ),
        ),
    ]
    pod_selector: Annotated[
        CheckedLabelSelector,
        Field(
            alias="podSelector",
            default_factory=CheckedLabelSelector,
            description=(
                "The pods of the namespace that the profile covers; {} (the default) means "
                "every pod."
            ),
        ),
    ]
    network_policy: Annotated[
        NetworkPolicySection | None,
        Field(
            alias="networkPolicy",
            default=None,
            description=(
                "NetworkPolicies for the covered pods: a default deny, DNS egress and the "
                "listed allow rules. Left out, the profile makes no NetworkPolicies."
            ),
        ),
    ]


    disruption_budgets: Annotated[
        list[DisruptionBudget],
        Field(
            alias="disruptionBudgets",
            default_factory=list,
            max_length=32,
            description="PodDisruptionBudgets, one per entry.",
            json_schema_extra={"x-kubernetes-list-type": "map",
                               "x-kubernetes-list-map-keys": ["name"]},
        ),
    ]
    secret_stores: Annotated[
        list[SecretStore],
        Field(
            alias="secretStores",
            default_factory=list,
            max_length=16,
            description=(
                "External Secrets Operator SecretStores, one per entry. They are applied once "
                "the cluster serves the SecretStore API; until then the profile says so."
            ),
            json_schema_extra={"x-kubernetes-list-type": "map",
                               "x-kubernetes-list-map-keys": ["name"]},
        ),
    ]
    pod_security: Annotated[
        PodSecurity | None,
        Field(
            alias="podSecurity",
            default=None,
            description=(
                "Pod Security Admission labels on the namespace. The operator owns only these "
                "labels and removes them when the section or the profile goes."
            ),
        ),
    ]
    resource_defaults: Annotated[
        ResourceDefaults | None,
        Field(
            alias="resourceDefaults",
            default=None,
            description="A LimitRange that gives containers default requests and limits.",
        ),
    ]


    quarantine: Annotated[
        Quarantine,
        Field(default_factory=Quarantine, description=(
            "Pod quarantine: a pod labelled quarantine=true is cut off at once, by policy, "
            "also while the operator is down.")),
    ]


def parse_spec(spec: dict[str, Any] | None) -> HardeningProfileSpec:
    """Parse a stored spec; raises ``pydantic.ValidationError`` for what the schema missed."""
    return HardeningProfileSpec.model_validate(spec or {})


# --------------------------------------------------------------------------------------------
# Status: what the operator observed. Written by the operator only, read by people,
# ``kubectl get`` and Argo CD's health check.


class Condition(_Model):
    type: Annotated[str, Field(max_length=64, description="The aspect this condition is about.")]
    status: Annotated[
        Literal["True", "False", "Unknown"], Field(description="Whether the aspect holds.")
    ]
    reason: Annotated[
        str, Field(max_length=128, description="Why, as a CamelCase word for machines.")
    ]
    message: Annotated[str, Field(max_length=4096, description="Why, for a person.")]
    observed_generation: Annotated[
        int,
        Field(alias="observedGeneration", description="The spec generation this speaks about."),
    ]
    last_transition_time: Annotated[
        str,
        Field(
            alias="lastTransitionTime",
            description="When status last changed.",
            json_schema_extra={"format": "date-time"},
        ),
    ]


class Repair(_Model):
    at: Annotated[
        str, Field(description="When the operator repaired the object.",
                   json_schema_extra={"format": "date-time"}),
    ]
    fields: Annotated[list[str], Field(default_factory=list, description="The fields it put back.")]
    changed_by: Annotated[
        list[str],
        Field(alias="changedBy", default_factory=list,
              description="The field managers that had changed them."),
    ]


class ChildStatus(_Model):
    kind: Annotated[str, Field(description="The kind of the object.")]
    name: Annotated[str, Field(description="The name of the object.")]
    state: Annotated[
        Literal["InSync", "Drifted", "Missing", "Failed", "Conflict", "Pending"],
        Field(
            description=(
                "InSync: as the profile wants. Drifted: changed by someone else. Missing: "
                "absent. Failed: the API server refused it. Conflict: an object of that name "
                "exists that the profile does not own. Pending: waiting for its API."
            )
        ),
    ]
    message: Annotated[str, Field(default="", description="Details, for a person.")]
    fields: Annotated[
        list[str],
        Field(default_factory=list, description="The drifted fields, when state is Drifted."),
    ]
    changed_by: Annotated[
        list[str],
        Field(
            alias="changedBy",
            default_factory=list,
            description="The field managers that changed them, where managedFields tell.",
        ),
    ]
    since: Annotated[
        str | None,
        Field(
            default=None,
            description="When the object entered this state.",
            json_schema_extra={"format": "date-time"},
        ),
    ]
    repairs: Annotated[
        int, Field(default=0, description="How often the operator repaired drift on it.")
    ]
    ready: Annotated[
        dict[str, str] | None,
        Field(default=None, description=(
            "The object's own Ready condition (status, reason, message), where it reports one, "
            "as a SecretStore does.")),
    ]
    last_repair: Annotated[
        Repair | None,
        Field(alias="lastRepair", default=None, description="The latest repair of drift on it."),
    ]


class QuarantinedPod(_Model):
    name: Annotated[str, Field(description="The pod.")]
    uid: Annotated[str, Field(default="", description="The pod's uid.")]
    since: Annotated[
        str | None,
        Field(default=None, description="When the label was set, where managedFields tell.",
              json_schema_extra={"format": "date-time"}),
    ]
    by: Annotated[
        str | None,
        Field(default=None, description="The field manager that set the label."),
    ]
    isolated: Annotated[bool, Field(default=True, description="Whether policy isolates it.")]
    message: Annotated[str, Field(default="", description="Why it is not isolated, if not.")]


class QuarantineStatus(_Model):
    pods: Annotated[
        list[QuarantinedPod],
        Field(default_factory=list, description="Pods carrying the quarantine label."),
    ]
    bypassed_by: Annotated[
        list[str],
        Field(alias="bypassedBy", default_factory=list, description=(
            "NetworkPolicies not made by the operator that select a quarantined pod and "
            "allow traffic, which quarantine cannot cancel.")),
    ]
    override: Annotated[
        str | None,
        Field(default=None, description=(
            "The admin-tier policy that denies quarantined pods' traffic over every "
            "NetworkPolicy, where the cluster serves one.")),
    ]


class HardeningProfileStatus(_Model):
    observed_generation: Annotated[
        int | None,
        Field(
            alias="observedGeneration",
            default=None,
            description="The spec generation that the operator last acted on.",
        ),
    ]
    mode: Annotated[
        str | None, Field(default=None, description="The mode in force: Enforce or Audit.")
    ]
    drifted: Annotated[
        int | None,
        Field(default=None, description="How many generated objects are not as wanted."),
    ]
    repairs: Annotated[
        int | None,
        Field(default=None, description="How many repairs the operator made in all."),
    ]
    conditions: Annotated[
        list[Condition],
        Field(
            default_factory=list,
            description="Ready, InSync, Degraded and Conflict, with reasons.",
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        ),
    ]
    children: Annotated[
        list[ChildStatus],
        Field(default_factory=list, description="The objects the profile governs."),
    ]
    quarantine: Annotated[
        QuarantineStatus | None,
        Field(default=None, description="Quarantined pods, and what isolates them."),
    ]
