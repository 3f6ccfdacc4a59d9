"""What people expect of a CLI (issue 15.4): shell completion, tables that never cut run ids or
states, listings of what is declared, and `apply --diff`."""

from __future__ import annotations

import os
import subprocess
import sys


def test_show_completion_prints_a_bash_script(cli):
    proc = cli("--show-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    assert "complete -o default -F _costwise_completion costwise" in proc.stdout
    assert "_COSTWISE_COMPLETE=complete_bash" in proc.stdout


def test_completion_completes_command_names_and_options(home):
    """The script's protocol, as bash drives it: the words so far in, the candidates out."""
    env = {**os.environ, "COSTWISE_HOME": str(home), "_COSTWISE_COMPLETE": "complete_bash"}
    code = "import sys; sys.argv[0] = 'costwise'; from scheduler.cli.main import main; main()"
    words = subprocess.run([sys.executable, "-c", code], env={**env, "COMP_WORDS": "costwise sh", "COMP_CWORD": "1"},
                           capture_output=True, text=True, timeout=60)
    assert words.stdout.split() == ["shapes", "show"], words.stderr
    options = subprocess.run([sys.executable, "-c", code],
                             env={**env, "COMP_WORDS": "costwise runs --st", "COMP_CWORD": "2"},
                             capture_output=True, text=True, timeout=60)
    assert options.stdout.split() == ["--state"], options.stderr
