"""The README stays true: CI runs its test command verbatim, its stage commands are the ones
dvc.yaml runs, and every `python -m pipeline ...` command it shows parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    first, second = _quick_start_commands()[:2]
    assert "dvc repro" in first and "pytest" in second
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert second.strip() in ci.splitlines()


def test_stage_table_matches_dvc_yaml():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    rows = re.findall(r"^\| `(\w+)@<task>` \| `([^`]+)` \|", README, flags=re.M)
    assert [name for name, _ in rows] == list(stages)
    for name, command in rows:
        expected = " ".join(stages[name]["do"]["cmd"].split())
        expected = expected.replace("${key}", "T")
        assert " ".join(command.split()) == expected.replace(" --quiet", ""), name


def _pipeline_commands() -> list[str]:
    """Commands in bash blocks (one per line) and inline ones (may wrap) with arguments."""
    commands = []
    for block in re.findall(r"```bash\n(.+?)\n```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("python -m pipeline "):
                commands.append(line)
    for inline in re.findall(r"`(python -m pipeline [^`]+)`", README):
        words = inline.split()
        if len(words) > 4 and "<" not in inline:  # a command, not a mention (`python -m pipeline predict`)
            commands.append(" ".join(words))
    return sorted(set(commands))


@pytest.mark.parametrize("command", _pipeline_commands())
def test_readme_pipeline_commands_parse(command):
    argv = shlex.split(command)[3:]
    if argv[0] in ("--help", "-h") or argv[-1] in ("--help", "-h"):
        return
    args = build_parser().parse_args(["cxr" if a == "T" else a for a in argv])
    assert callable(args.func)


def test_readme_lists_every_cli_stage():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "stage")  # noqa: SLF001 (argparse internals)
    for name in sub.choices:
        assert f"python -m pipeline {name}" in README, name
