"""Pulumi property bags ⇄ costwise documents.

What arrives over gRPC is not quite a document: integers come back as floats (protobuf has one number
type), a secret may still carry its wrapper when a caller did not strip it, preview values may be
unknown, and the bag holds provider-only keys (`db`, `cancel_runs_on_delete`, …) and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc

from scheduler.core.errors import SpecError

PROVIDER_KEY = "__provider"
# Inputs of the resource that are not part of the document.
EXTRA_KEYS = ("db", "cancel_runs_on_delete", "parameter_types")
# Computed outputs; never inputs, never compared by diff.
OUTPUT_KEYS = ("artifact_path", "fits", "cheapest_shape", "expected_cost_usd", "step_shapes", "catalog_version",
               "expected_cost_range_usd", "unpriced_steps")
# Where a value given as a Pulumi secret is accepted (and sealed): every other place would store it.
SECRET_FIELDS = ("env", "secret_env")


@dataclass(frozen=True)
class Extras:
    db: str | None = None
    cancel_runs_on_delete: bool = False
    parameter_types: dict | None = None

    def as_props(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.db:
            out["db"] = self.db
        if self.cancel_runs_on_delete:
            out["cancel_runs_on_delete"] = True
        if self.parameter_types:
            out["parameter_types"] = dict(self.parameter_types)
        return out


def has_unknowns(value: Any) -> bool:
    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_unknowns(v) for v in value)
    return False


def numbers(value: Any, floats: frozenset = frozenset(), path: str = "") -> Any:
    """Integral floats back to ints (protobuf made them floats), except where a float was declared."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and path not in floats:
        return int(value)
    if isinstance(value, dict):
        return {k: numbers(v, floats, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v, floats, path) for v in value]
    return value


def split(props: dict[str, Any]) -> tuple[dict[str, Any], Extras, dict[str, str]]:
    """(document body, provider-only extras, secret values) from a property bag.

    Secret values are the non-reference entries of `secret_env`, plus every entry of an `env` map
    that arrived wrapped as a Pulumi secret. A Pulumi secret anywhere else is refused: the catalog
    would have to store it in plain text.
    """
    body: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for key, value in props.items():
        if key == PROVIDER_KEY or key in OUTPUT_KEYS or key in EXTRA_KEYS:
            continue
        if rpc.is_rpc_secret(value):
            if key not in SECRET_FIELDS:
                raise SpecError(
                    f"{key}: a Pulumi secret is not accepted here; give secrets as env or secret_env values",
                    key, "[secret]",
                )
            value = rpc.unwrap_rpc_secret(value)
            if key == "env" and isinstance(value, dict):
                secrets.update({k: _text(v) for k, v in value.items() if not has_unknowns(v)})
                continue
        body[key] = value
    secret_env = body.get("secret_env")
    if isinstance(secret_env, dict):
        refs = {}
        for name, value in secret_env.items():
            value = rpc.unwrap_rpc_secret(value)
            if isinstance(value, str) and value.startswith(("env:", "file:")) or has_unknowns(value):
                refs[name] = value
            else:
                secrets[name] = _text(value)
        body["secret_env"] = refs
    floats = frozenset(f"parameters.{k}" for k, t in (props.get("parameter_types") or {}).items() if t == "float")
    extras = Extras(
        db=props.get("db") or None,
        cancel_runs_on_delete=bool(props.get("cancel_runs_on_delete", False)),
        parameter_types=props.get("parameter_types") or None,
    )
    return numbers(body, floats), extras, secrets


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def redacted(props: dict[str, Any]) -> dict[str, Any]:
    """The bag with every secret value replaced, for answers that must not echo it (check failures)."""
    out = {}
    for key, value in props.items():
        if rpc.is_rpc_secret(value):
            value = "[secret]" if not isinstance(rpc.unwrap_rpc_secret(value), dict) else {
                k: "[secret]" for k in rpc.unwrap_rpc_secret(value)
            }
        elif key == "secret_env" and isinstance(value, dict):
            value = {k: (v if isinstance(v, str) and v.startswith(("env:", "file:")) else "[secret]") for k, v in value.items()}
        out[key] = value
    return out
