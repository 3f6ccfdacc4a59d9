"""The costwise stack: shapes from a price catalog, and the example retraining jobs and pipeline.

The jobs and the pipeline are the documents of the example shipped with costwise
(scheduler/cli/demo_assets/retrain/retrain.yaml: prepare -> train -> evaluate -> register | reject),
so `pulumi up`, `costwise apply` and `costwise demo` declare the same thing. Stack config (see
Pulumi.dev.yaml / Pulumi.prod.yaml) chooses what a stack may use:
  costwise:backends     backends allowed here: local, docker, kubernetes (default [local])
  costwise:shapes       instance types taken from the price catalog (glob patterns; default none)
  costwise:prices       the price-catalog CSV (default stacks/prices/public-on-demand.csv)
  costwise:region       take each instance type's price in this region (default: cheapest region)
  costwise:localShapes  slices of the daemon's machine: [{name, vcpus, memory_gib, price_per_hour}]
  costwise:image        container image of the jobs (required with docker / kubernetes)
  costwise:schedule     cron line of the retraining pipeline (default "0 3 * * 1")
  costwise:db           catalog URL (default COSTWISE_DB, else SQLite under COSTWISE_HOME)
  costwise:registryToken  (secret) handed to the register step as REGISTRY_TOKEN
"""

from __future__ import annotations

from pathlib import Path

import pulumi

import provider
from provider.prices import load_catalog, load_shapes
from scheduler.cli.examples import RETRAIN, retrain_documents

HERE = Path(__file__).resolve().parent
DEFAULT_LOCAL_SHAPES = [
    {"name": "local-small", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.04, "capacity": 2},
    {"name": "local-large", "vcpus": 4, "memory_gib": 16, "price_per_hour": 0.12, "capacity": 1},
]


def report_skipped(prices: str) -> None:
    """Say which catalog rows yielded no shape, by reason (zero price, duplicate, unmappable accelerator...)."""
    skipped = dict(sorted(load_catalog(prices).skipped.items()))
    counts = ", ".join(f"{reason} {n}" for reason, n in skipped.items()) or "none"
    pulumi.log.info(f"price catalog {prices}: rows skipped by reason: {counts}")
    pulumi.export("catalog_skipped", skipped)


def main() -> None:
    config = pulumi.Config("costwise")
    backends = config.get_object("backends") or ["local"]
    db = config.get("db")
    common = {"db": db} if db else {}

    docs = []
    if "local" in backends:
        docs += [{**s, "backend": "local"} for s in (config.get_object("localShapes") or DEFAULT_LOCAL_SHAPES)]
    cloud = [b for b in backends if b != "local"]
    patterns = config.get_object("shapes") or []
    if cloud and patterns:
        prices = config.get("prices") or str(HERE / "prices" / "public-on-demand.csv")
        report_skipped(prices)
        docs += load_shapes(prices, backend=cloud[0], include=patterns, region=config.get("region"),
                            overrides=config.get_object("shapeOverrides"))
    shapes = [provider.ComputeShape(doc["name"], provider.ComputeShapeArgs(**doc, **common)) for doc in docs]

    image = config.get("image") if cloud else None
    token = config.get_secret("registryToken")
    after_shapes = pulumi.ResourceOptions(depends_on=shapes)
    example = retrain_documents()
    jobs = {}
    for doc in (d for d in example if d["kind"] == "Job"):
        fields = {k: v for k, v in doc.items() if k != "kind"}
        fields["artifact"] = str(RETRAIN / doc["artifact"])
        if doc["name"] == "register" and token is not None:
            fields["secret_env"] = {"REGISTRY_TOKEN": token}
        jobs[doc["name"]] = provider.Job(doc["name"], provider.JobArgs(**fields, image=image, **common), opts=after_shapes)

    spec = next(d for d in example if d["kind"] == "Pipeline")
    fields = {k: v for k, v in spec.items() if k not in ("kind", "schedule")}
    pipeline = provider.Pipeline(spec["name"], provider.PipelineArgs(
        **fields,
        backends=backends,
        schedule={"cron": config.get("schedule") or spec["schedule"]["cron"]},
        **common,
    ), opts=pulumi.ResourceOptions(depends_on=list(jobs.values())))

    pulumi.export("shapes", [s.name for s in shapes])
    pulumi.export("train_artifact_hash", jobs["train"].artifact_hash)
    pulumi.export("train_cheapest_shape", jobs["train"].cheapest_shape)
    pulumi.export("pipeline_step_shapes", pipeline.step_shapes)


main()
