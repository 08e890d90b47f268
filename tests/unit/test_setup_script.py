"""`. scripts/setup.sh`, which the README has an operator run once per terminal."""

import subprocess

from tests.conftest import ROOT


def test_sourcing_the_set_up_leaves_the_shells_options_as_they_were():
    """An operator trial: it left `set -euo pipefail` on in the operator's shell, so the
    first command that failed (a refusal, exit 2) closed the terminal."""
    script = (
        '. scripts/setup.sh >/dev/null 2>&1; false; echo "alive $-"; '
        "shopt -po nounset pipefail | tr '\\n' ' '"
    )
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True)
    flags = done.stdout.split()[1]
    assert done.stdout.startswith("alive ") and "e" not in flags and "u" not in flags
    assert "set +o nounset set +o pipefail" in done.stdout, done.stdout
    # A script that asked for them keeps them (scripts/demo and scripts/test do).
    strict = subprocess.run(
        ["bash", "-c", 'set -euo pipefail; . scripts/setup.sh >/dev/null 2>&1; echo "$-"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "e" in strict.stdout and "u" in strict.stdout, strict.stdout
