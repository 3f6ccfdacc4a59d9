"""register: keeps a new version of the model in the registry folder (MODEL_REGISTRY), AI Center style."""
import json
import os
import shutil
from pathlib import Path

registry = Path(os.environ.get("MODEL_REGISTRY") or Path.home() / ".costwise" / "models" / "abalone")
registry.mkdir(parents=True, exist_ok=True)
versions = sorted(int(p.name[1:]) for p in registry.glob("v*") if p.name[1:].isdigit())
version = (versions[-1] + 1) if versions else 1
target = registry / f"v{version}"
target.mkdir()
inputs = Path(os.environ["COSTWISE_INPUT_DIR"])
shutil.copy(inputs / "model.pkl", target / "model.pkl")
info = {"version": version, "run_id": os.environ["COSTWISE_RUN_ID"],
        "metrics": json.loads((inputs / "metrics.json").read_text())}
(target / "version.json").write_text(json.dumps(info, indent=2))
(Path(os.environ["COSTWISE_OUTPUT_DIR"]) / "registered.json").write_text(json.dumps(info))
print(f"registered model version {version} at {target}")
