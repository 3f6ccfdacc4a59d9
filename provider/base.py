"""One dynamic provider for every catalog kind: a thin adapter over scheduler's specs and catalog.

`check` runs the validation `costwise apply` runs and pins the artifact's content hash; `diff`
compares the documents (never the `__provider` bytes, never computed outputs); `create` / `update`
apply the document through `scheduler.store.catalog.apply_documents`; `read` reports the catalog as it is
now; `delete` goes through `scheduler.store.catalog.delete_entry`.

Instances hold nothing but class-level constants, so dill pickles them by reference; the catalog is
opened per call from `COSTWISE_HOME` / `COSTWISE_DB` (or the resource's `db` input).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, ClassVar, Iterator

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from scheduler.core.errors import Conflict, CostwiseError, SpecError
from scheduler.store.settings import Settings

from . import props as P
from . import secrets as S

SEALED_PLACEHOLDER = "env:COSTWISE_SEALED_SECRET"


class ProviderError(Exception):
    """A refusal the engine shows to the user (one clear line, no costwise traceback)."""


class CatalogProvider(ResourceProvider):
    """Check / diff / create / read / update / delete one kind of catalog entry."""

    kind: ClassVar[str] = ""
    # Changing these replaces the resource; every other change is an in-place update.
    replace_keys: ClassVar[tuple[str, ...]] = ("name", "db")
    # The serialized provider carries no secret, so the state need not encrypt it.
    serialize_as_secret_always = False

    # -- the SDK's interface ---------------------------------------------------------------------
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        try:
            return CheckResult(self._checked(news), [])
        except SpecError as exc:
            errors = self._every_error(news) or [exc]
            return CheckResult(P.redacted(news), [CheckFailure(e.field or "", str(e)) for e in errors])

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = self._comparable(olds), self._comparable(news)
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        replaces = [k for k in changed if k in self.replace_keys]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = self._apply(props)
        return CreateResult(name, self._outputs_for(props, name))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        name = self._apply(news)
        return UpdateResult(self._outputs_for(news, name))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        _, extras, _ = P.split(props)
        name = id_ or props.get("name")
        with self._catalog(extras) as ctx:
            spec = ctx.store.get(self.kind, name)
            if spec is None:
                return ReadResult("", {})  # an empty id tells the engine the entry is gone
            inputs = {**self.document(spec), **extras.as_props()}
            return ReadResult(name, {**inputs, **self.computed(ctx, spec)}, inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from scheduler.store.catalog import delete_entry

        _, extras, _ = P.split(props)
        name = id_ or props.get("name")
        with self._catalog(extras) as ctx:
            current = ctx.store.get(self.kind, name)
            if current is None or self.replaced(current, props):
                return
            engine = ctx.engine if extras.cancel_runs_on_delete else None
            try:
                delete_entry(ctx.store, self.kind, name, cancel_runs=extras.cancel_runs_on_delete, engine=engine)
            except Conflict as exc:
                hint = " (set cancel_runs_on_delete: true on the resource to cancel them)" if self.kind != "Shape" else ""
                raise ProviderError(f"{exc}{hint}") from None
            S.forget(ctx.settings, self.kind, name)

    # -- hooks for kinds -------------------------------------------------------------------------
    def prepare(self, spec, doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """Kind-specific work at check time (jobs: resolve and content-hash the artifact)."""
        return doc

    def comparable(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The document as diff sees it."""
        return doc

    def computed(self, ctx, spec) -> dict[str, Any]:
        """Outputs the provider adds (shapes that fit, cheapest shape, ...)."""
        return {}

    def replaced(self, current, props: dict[str, Any]) -> bool:
        """True when the catalog entry now belongs to the resource that replaced this one."""
        return False

    # -- helpers ---------------------------------------------------------------------------------
    def model(self):
        from scheduler.core.specs import SPEC_KINDS

        _load_kinds()
        model = SPEC_KINDS.get(self.kind)
        if model is None:
            raise ProviderError(f"kind {self.kind!r} is not known to this costwise ({', '.join(SPEC_KINDS)})")
        return model

    def parse(self, body: dict[str, Any]):
        from scheduler.core.specs import parse_spec

        self.model()
        return parse_spec({k: v for k, v in body.items() if k != "kind"}, self.kind)

    def document(self, spec) -> dict[str, Any]:
        """Inputs form of a spec: JSON-safe, defaults left out, no `kind` (the type says it)."""
        doc = spec.model_dump(mode="json", exclude_defaults=True)
        doc.pop("kind", None)
        doc["name"] = spec.name
        return doc

    def _checked(self, news: dict[str, Any]) -> dict[str, Any]:
        body, extras, secret_values = P.split(news)
        if P.has_unknowns(body):
            return {**body, **extras.as_props()}  # a preview with values not known yet: check again at `up`
        if secret_values:
            body = {**body, "secret_env": {**body.get("secret_env", {}), **{k: SEALED_PLACEHOLDER for k in secret_values}}}
            for key in secret_values:
                body.get("env", {}).pop(key, None)
        spec = self.parse(body)  # same validation as `costwise apply`
        settings = _settings(extras)
        doc = self.document(spec)
        if secret_values:
            doc["secret_env"] = {
                **doc.get("secret_env", {}),
                **{k: S.seal(settings, self.kind, spec.name, k, v) for k, v in secret_values.items()},
            }
        doc = self.prepare(spec, doc, settings)
        return {**doc, **extras.as_props()}

    def _every_error(self, news: dict[str, Any]) -> list[SpecError]:
        """Each field's error, worded by the same code as `costwise apply` (which stops at the first)."""
        from pydantic import ValidationError

        from scheduler.core.specs import describe_error

        try:
            body, _, secret_values = P.split(news)
            model = self.model()
            if secret_values:
                body = {**body, "secret_env": {**body.get("secret_env", {}), **{k: SEALED_PLACEHOLDER for k in secret_values}}}
            model.model_validate({**body, "kind": self.kind})
        except ValidationError as exc:
            label = f"{self.kind} {body.get('name', '?')!r}"
            errors = []
            for err in exc.errors():
                detail = {k: err[k] for k in ("type", "loc", "input", "ctx") if k in err}
                try:
                    one = ValidationError.from_exception_data(exc.title, [detail])
                except Exception:  # noqa: BLE001 - an error type pydantic cannot rebuild: use the first only
                    return []
                errors.append(describe_error(one, model, label))
            return errors
        except (SpecError, ProviderError):
            return []
        return []

    def _comparable(self, props: dict[str, Any]) -> dict[str, Any]:
        body, extras, secret_values = P.split(props)
        body = {k: v for k, v in body.items() if k in self.model().model_fields}
        compared = {**extras.as_props()}
        compared.pop("parameter_types", None)
        if secret_values:  # diff before check: compare names only, the values are not ours to keep
            body = {**body, "secret_env": {**body.get("secret_env", {}), **{k: "[secret]" for k in secret_values}}}
        if P.has_unknowns(body):
            return {**compared, **body}
        try:
            doc = self.parse(body).model_dump(mode="json")
        except SpecError:
            doc = body
        doc.pop("kind", None)
        return {**compared, **self.comparable(doc)}

    def _apply(self, props: dict[str, Any]) -> str:
        from scheduler.store.catalog import Document, apply_documents

        try:
            checked = self._checked(props)  # idempotent: the engine gave us checked inputs already
        except SpecError as exc:
            raise ProviderError(str(exc)) from None
        body, extras, _ = P.split(checked)
        with self._catalog(extras) as ctx:
            lost = S.missing_sealed(ctx.settings, body.get("secret_env") or {})
            if lost:
                raise ProviderError(f"secret_env.{lost[0]}: the sealed value is gone; run `pulumi up` again to reseal it")
            doc = Document({**body, "kind": self.kind}, Path.cwd(), f"pulumi:{self.kind}:{body.get('name')}")
            try:
                apply_documents([doc], ctx.store, ctx.settings)
            except SpecError as exc:
                raise ProviderError(str(exc)) from None
        return body["name"]

    def _outputs_for(self, props: dict[str, Any], name: str) -> dict[str, Any]:
        _, extras, _ = P.split(props)
        with self._catalog(extras) as ctx:
            spec = ctx.store.require(self.kind, name)
            return {**self.document(spec), **extras.as_props(), **self.computed(ctx, spec)}

    @contextlib.contextmanager
    def _catalog(self, extras: P.Extras) -> Iterator[Any]:
        from scheduler.runtime.context import AppContext

        ctx = AppContext(_settings(extras))
        try:
            yield ctx
        except CostwiseError as exc:
            raise ProviderError(str(exc)) from None
        finally:
            ctx.close()


def _settings(extras: P.Extras) -> Settings:
    return Settings.resolve(os.environ.get("COSTWISE_HOME"), extras.db)


def _load_kinds() -> None:
    """Kinds registered by optional scheduler modules (the Pipeline kind lives in scheduler.core.pipelines)."""
    with contextlib.suppress(ImportError):
        import scheduler.core.pipelines  # noqa: F401
