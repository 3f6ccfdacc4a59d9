"""Run states are a StrEnum: a typo is an AttributeError, and stored rows still compare as text."""

import json

from scheduler.core import runs
from scheduler.core.runs import FINAL_STATES, RunRecord, RunState, new_pipeline_run_id, new_run_id


def test_states_equal_their_stored_text_and_the_old_names_are_aliases():
    assert RunState("TIMED_OUT") is RunState.TIMED_OUT == "TIMED_OUT"
    assert runs.QUEUED is RunState.QUEUED and runs.CACHED is RunState.CACHED
    assert json.dumps({"state": RunState.FAILED}) == '{"state": "FAILED"}'
    assert f"{RunState.SKIPPED}" == "SKIPPED"


def test_final_states_are_the_finished_ones():
    assert {s for s in RunState if s.finished} == set(FINAL_STATES)
    assert RunRecord(id=new_run_id(), job="j", state=RunState.CACHED).finished
    assert not RunRecord(id=new_run_id(), job="j").finished


def test_run_and_pipeline_run_ids_are_told_apart_by_prefix():
    assert new_run_id().startswith("r-") and new_pipeline_run_id().startswith("p-")
