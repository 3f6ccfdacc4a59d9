"""What `costwise apply --diff` says an apply would do, entry by entry (like `pulumi preview`).

Pure: the parsed specs of the documents against the ones stored now. An entry is created (not stored),
unchanged (the same document as stored: apply would say "unchanged" too), replaced (a shape whose
backend changed: its runs would go elsewhere; a job whose artifact's content hash changed: it would
run other code) or else updated, with the fields that changed. Only field names are reported, never
values (env and secret references stay out of the output).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Mapping, Sequence

from .specs import Spec, spec_to_doc


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"


# The fields whose change makes an entry another thing rather than the same thing edited.
REPLACED_BY = {"Shape": ("backend",), "Job": ("artifact_hash",)}
HASH_SHOWN = 12  # characters of a content hash shown in a replacement's reason


@dataclass(frozen=True)
class EntryDiff:
    kind: str
    name: str
    change: Change
    fields: tuple[str, ...] = ()  # dotted paths of the fields that differ (updated and replaced)
    reason: str | None = None  # why it is a replacement

    def public(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "change": self.change.value, "fields": list(self.fields),
                "reason": self.reason}


def changed_fields(new: Any, old: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two documents differ: mappings are followed key by key, anything else
    (lists included) is compared whole."""
    if isinstance(new, Mapping) and isinstance(old, Mapping):
        out: list[str] = []
        for key in sorted(set(new) | set(old), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in new or key not in old:
                out.append(path)
            else:
                out += changed_fields(new[key], old[key], path)
        return out
    return [] if new == old else [prefix or "(document)"]


def diff_entry(new: Spec, old: Spec | None) -> EntryDiff:
    if old is None:
        return EntryDiff(new.kind, new.name, Change.CREATED)
    new_doc, old_doc = spec_to_doc(new), spec_to_doc(old)
    fields = tuple(changed_fields(new_doc, old_doc))
    if not fields:
        return EntryDiff(new.kind, new.name, Change.UNCHANGED)
    for field in REPLACED_BY.get(new.kind, ()):
        if field in fields:
            return EntryDiff(new.kind, new.name, Change.REPLACED, fields,
                             _replacement_reason(field, old_doc.get(field), new_doc.get(field)))
    return EntryDiff(new.kind, new.name, Change.UPDATED, fields)


def _replacement_reason(field: str, old: Any, new: Any) -> str:
    if field == "artifact_hash":
        return f"artifact changed ({_short_hash(old)} -> {_short_hash(new)})"
    return f"{field} {old} -> {new}"


def _short_hash(digest: Any) -> str:
    if not digest:
        return "none"
    return str(digest).split(":", 1)[-1][:HASH_SHOWN]


def diff_catalog(specs: Sequence[Spec], stored: Mapping[tuple[str, str], Spec | None]) -> list[EntryDiff]:
    """One entry per spec, in the documents' order; ``stored`` maps (kind, name) to what the catalog
    holds now (None or absent: nothing)."""
    return [diff_entry(spec, stored.get((spec.kind, spec.name))) for spec in specs]


def summary_line(diffs: Sequence[EntryDiff]) -> str:
    counts = {change: sum(d.change is change for d in diffs) for change in Change}
    return (f"{counts[Change.CREATED]} to create, {counts[Change.UPDATED]} to update, "
            f"{counts[Change.REPLACED]} to replace, {counts[Change.UNCHANGED]} unchanged; nothing was stored")
