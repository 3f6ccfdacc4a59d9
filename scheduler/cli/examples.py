"""The example retraining pipeline shipped with costwise (used by `costwise demo` and stacks/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ASSETS = Path(__file__).parent / "demo_assets"
RETRAIN = ASSETS / "retrain"


def retrain_documents(include_shapes: bool = False) -> list[dict[str, Any]]:
    """The retraining jobs and pipeline (and the demo's local shapes) as documents."""
    files = ([RETRAIN / "shapes.yaml"] if include_shapes else []) + [RETRAIN / "retrain.yaml"]
    return [doc for path in files for doc in yaml.safe_load_all(path.read_text()) if doc]
