"""CI is deterministic: property tests run with a fixed seed when .ci/run runs the suite."""

import os
import subprocess
import sys

from hypothesis import settings

from conftest import REPO


def test_ci_script_selects_the_fixed_seed_profile():
    script = (REPO / ".ci" / "run").read_text()
    assert "export HYPOTHESIS_PROFILE=ci" in script
    assert settings.get_profile("ci").derandomize


def test_the_profile_named_in_the_environment_is_the_one_in_force():
    code = ("import sys; sys.path.insert(0, 'tests'); import conftest; from hypothesis import settings; "
            "print(settings.default.derandomize)")
    for profile, expected in (("ci", "True"), ("dev", "False")):
        for ci in ("true", ""):  # hypothesis derandomizes by itself under CI=true: the profile must still rule
            out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                                 env={**os.environ, "HYPOTHESIS_PROFILE": profile, "CI": ci}).stdout.strip()
            assert out == expected, (profile, ci, out)
