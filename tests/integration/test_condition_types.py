"""A `when` over incomparable values fails its step with the value and the types named, instead of
running both branches (today's `"a" > 0.5` was True, and so was its negation)."""

from tests.conftest import write
from tests.integration.test_pipelines import SHAPES, apply_all, jobs_doc, run, states

BRANCHES = """
kind: Pipeline
name: flow
steps:
  - name: a
    job: step-a
    args: ["a", "a.json"]
    outputs: [a.json]
  - name: low
    fail: "taken the low branch"
    when: {value: "a/a.json#step", op: "<=", than: 0.5}
  - name: high
    fail: "taken the high branch"
    when: {value: "a/a.json#step", op: ">", than: 0.5}
"""


def test_a_string_against_a_number_fails_both_branches_with_the_types(app, tmp_path):
    root = tmp_path / "flow"
    write(root / "shapes.yaml", SHAPES)
    write(root / "jobs.yaml", jobs_doc(root))
    write(root / "pipeline.yaml", BRANCHES)
    apply_all(app, root)
    record = run(app)
    assert states(record) == {"a": "SUCCEEDED", "low": "FAILED", "high": "FAILED"}
    for name, op in (("low", "<="), ("high", ">")):
        reason = record["by_step"][name]["reason"]
        assert f"cannot compare 'a' (string) {op} 0.5 (number)" in reason, reason
    assert record["state"] == "FAILED"
