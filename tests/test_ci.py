""".ci/run stops at the first failing step.

The script is run for real, in a copy of its folder layout, with stand-ins for the commands it
calls (apt-get, python3.11, pip, python, dvc) first on PATH. Each stand-in logs its call and
exits as the test says, so a failing install must stop CI before any test or `dvc repro` runs:
bash ignores failures inside `a && b && c` chains under `set -e` unless the script guards them.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

def _stand_in(path: Path, name: str, body: str) -> None:
    script = path / name
    script.write_text("#!/usr/bin/env bash\n"
                      f'echo "{name} $*" >> "$CI_CALLS"\n' + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def _run_ci(tmp_path: Path, *, failing: str | None = None, status_line: str =
            "Data and pipelines are up to date.") -> tuple[subprocess.CompletedProcess, list[str], float]:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    fake = tmp_path / "bin"
    fake.mkdir(parents=True)
    fails = {  # exit status of each stand-in call, by the step it belongs to
        "apt-get": 'exit 100' if failing == "apt-get" else "exit 0",
        "python3.11": ('exit 1' if failing == "venv" else
                       'mkdir -p .venv/bin && echo true > .venv/bin/activate; exit 0'),
        "pip": 'exit 1' if failing == "pip-test" else "exit 0",
        "python": 'echo "addopts:$PYTEST_ADDOPTS" >> "$CI_CALLS"\n'
                  + ('exit 1' if failing == "pytest" else "exit 0"),
        "dvc": ('[ "$1" = repro ] && exit 1\n' if failing == "repro" else "")
               + f'[ "$1" = status ] && echo "{status_line}"\nexit 0',
    }
    for name, body in fails.items():
        _stand_in(fake, name, body + "\n")
    calls = tmp_path / "calls.log"
    calls.touch()
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path), "CI_CALLS": str(calls)}
    start = time.monotonic()
    proc = subprocess.run(["bash", str(repo / ".ci" / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    return proc, calls.read_text().splitlines(), time.monotonic() - start


@pytest.mark.skipif(shutil.which("git") is None, reason="the CI script configures git")
@pytest.mark.parametrize("failing", ["apt-get", "venv", "pip-test", "pytest", "repro"])
def test_ci_stops_at_the_first_failing_step(tmp_path, failing):
    proc, calls, seconds = _run_ci(tmp_path, failing=failing)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "CI: step failed" in proc.stderr
    assert seconds < 30
    names = [c.split()[0] for c in calls if not c.startswith("addopts:")]
    order = ["apt-get", "python3.11", "pip", "python", "dvc"]
    last = {"apt-get": "apt-get", "venv": "python3.11", "pip-test": "pip", "pytest": "python",
            "repro": "dvc"}[failing]
    # nothing after the failing step ran: no tests after a failed install, no repro after tests
    if failing != "repro":
        assert names[-1] == last and "dvc" not in names
        assert not any(order.index(n) > order.index(last) for n in names)
    else:
        assert calls[-1].startswith("dvc repro") and not any(c.startswith("dvc status") for c in calls)


@pytest.mark.skipif(shutil.which("git") is None, reason="the CI script configures git")
def test_ci_passes_when_every_step_passes_and_fails_when_repro_leaves_work(tmp_path):
    proc, calls, _ = _run_ci(tmp_path / "ok")
    assert proc.returncode == 0, proc.stderr
    assert calls[0].startswith("apt-get update")
    assert any(c.startswith("python -m pytest -q -n 2 --dist loadfile") for c in calls)
    assert calls[-2:] == ["dvc repro", "dvc status"]
    assert "addopts: --durations=25" in calls  # CI prints the slowest tests

    proc, calls, _ = _run_ci(tmp_path / "stale", status_line="train@cxr: changed deps")
    assert proc.returncode != 0 and "left stages out of date" in proc.stderr
