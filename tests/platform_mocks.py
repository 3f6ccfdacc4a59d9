"""Runs a platform stack program (stacks/platform_*/__main__.py) under pulumi.runtime.set_mocks and
keeps every resource's type and inputs, secrets still wrapped (so a test can see what is secret)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
from pulumi.runtime import rpc



class Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[f"{args.typ}::{args.name}"] = args
        outs = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outs["imageId"] = f"sha256:{args.name}"
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}, None

    def of_type(self, typ: str) -> dict[str, dict]:
        """name -> inputs of every resource of this type token (e.g. docker:index/container:Container)."""
        return {a.name: a.inputs for a in self.resources.values() if a.typ == typ}


def run_stack(program: Path, config: dict, secret_keys: tuple[str, ...] = ()) -> Recorder:
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project=program.parent.name, stack="test", preview=False)
    pulumi.runtime.set_all_config(
        {f"costwise:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()},
        [f"costwise:{k}" for k in secret_keys],
    )
    try:
        pulumi.runtime.test(lambda: runpy.run_path(str(program), run_name="__main__"))()
    finally:
        pulumi.runtime.set_all_config({})
    return mocks


def is_secret(value) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def plain(value):
    """The value with every secret wrapper taken off, at any depth."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
