"""`costwise kueue export`: Kueue's ResourceFlavors, ClusterQueue and LocalQueues for the catalog's
kubernetes shapes, as YAML (built by ``executors.kueue_objects``; this command only writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..app import app, app_context, typer_app

kueue_app = typer_app(help="Kueue admission for kubernetes shapes.")
app.add_typer(kueue_app, name="kueue")


@kueue_app.command("export")
def export(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, "--out", help="Write the YAML here (default: stdout)."),
    namespace: Optional[str] = typer.Option(None, "--namespace", envvar="COSTWISE_K8S_NAMESPACE",
                                            help="Where costwise creates Jobs (the LocalQueues' namespace)."),
    cluster_queue: str = typer.Option("costwise", "--cluster-queue", help="The ClusterQueue's name."),
):
    """ResourceFlavors (one a kubernetes shape), a ClusterQueue whose quotas are the shapes' capacity
    x allocatable, and a LocalQueue per kueue_queue: `kubectl apply -f` them where Kueue runs."""
    import yaml

    from ...executors.k8s_client import context_namespace
    from ...executors.kueue_objects import kueue_objects

    objects = kueue_objects(app_context(ctx).store.list("Shape"), namespace or context_namespace() or "default",
                            cluster_queue)
    text = yaml.safe_dump_all(objects, sort_keys=False)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"wrote {len(objects)} Kueue objects to {out}", err=True)
