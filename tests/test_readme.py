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
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()

    def line_of(command: str) -> int:
        """The line that runs ``command`` verbatim, with only a fail-fast guard after it."""
        hits = [i for i, line in enumerate(ci) if line.startswith(command.strip() + " || fail ")]
        assert len(hits) == 1, command
        return hits[0]

    assert line_of(first) > line_of(second)  # the tests first, then the main job
    tail = "\n".join(ci[line_of(first):])  # and a rerun is a no-op
    assert '"$(dvc status)"' in tail and 'grep -q "Data and pipelines are up to date"' in tail


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


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", README, flags=re.S)


def test_readme_object_storage_remote_lines_configure_dvc(tmp_path):
    """The S3/GCS remote lines run as written (no cloud is reached: DVC only records them), and
    credentials land in the git-ignored local config, never in the committed one."""
    import os
    import subprocess
    import sys

    block = next(b for b in _bash_blocks() if "s3://" in b and "dvc remote modify" in b)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    for line in block.splitlines():
        command = shlex.split(line.split("  #", 1)[0])
        assert command[0] == "dvc", line
        res = subprocess.run([sys.executable, "-m", *command], cwd=tmp_path, capture_output=True,
                             text=True, env=env)
        assert res.returncode == 0, f"{line}\n{res.stderr}"
    config = (tmp_path / ".dvc" / "config").read_text()
    local = (tmp_path / ".dvc" / "config.local").read_text()
    for expected in ("url = s3://my-bucket/medvision", "region = eu-central-1",
                     "url = gs://my-bucket/medvision", "projectname = my-gcp-project"):
        assert expected in config
    assert "profile = medvision" in local and "credentialpath = /secure/medvision-sa.json" in local
    assert "profile" not in config and "credentialpath" not in config  # secrets: local config only
    ignored = subprocess.run(["git", "check-ignore", ".dvc/config.local"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert ignored.returncode == 0  # `dvc init` git-ignores the local config


#: Every command the README shows, and what runs it (a test, or CI). A command the README gains
#: must be added here, with the test that exercises it, or the test below fails.
EXERCISED: tuple[tuple[str, str], ...] = (
    (r"python3\.11 -m venv \.venv && \. \.venv/bin/activate && pip install -e \. && dvc repro$",
     ".ci/run (verbatim, on a fresh clone, then `dvc status`)"),
    (r"apt-get update && .* python -m pytest -q -n 2 --dist loadfile$", ".ci/run (verbatim)"),
    (r"python -m pytest tests/test_augment\.py$", ".ci/run (the suite holds that file)"),
    (r"python -m pipeline --help$", "tests/test_dvc_pipeline.py::test_cli_lists_stages"),
    (r"python -m pipeline <stage> --help$|^python -m pipeline [\w-]+$",
     "tests/test_readme.py::test_every_stage_has_help"),
    (r"python -m pipeline (demo|ingest|train|explain|evaluate|report|validate) --task T ",
     "tests/test_dvc_pipeline.py::test_repro_runs_every_stage_for_every_task (dvc.yaml runs them; "
     "tests/test_readme.py::test_stage_table_matches_dvc_yaml)"),
    (r"TF_CONFIG=.* python -m pipeline train --task cxr ",
     "tests/train/test_distribute.py::test_multi_worker_strategy_with_two_local_processes"),
    (r"python -m pipeline predict --model ",
     "tests/stages/test_report_predict.py::test_predict_cli_on_a_hostile_dicom_uses_the_pipeline_threshold_and_layer"),
    (r"python -m pipeline export-dicom --task cxr ",
     "tests/stages/test_report_predict.py::test_export_dicom_joins_the_source_study"),
    (r"python -m pipeline export --model models/\w+ --out exports/serving/\w+ "
     r"--data data/interim/\w+( --onnx)?$",
     "tests/stages/test_export.py::test_export_writes_every_file_with_its_hash (its fixture runs the CLI "
     "with --data, --metrics and --onnx)"),
    (r'pip install -e "\.\[onnx\]"$',
     ".ci/run (the `test` extra includes `onnx`); "
     "tests/stages/test_export.py::test_onnx_is_opt_in_and_verified"),
    (r"dvc repro$", "tests/test_dvc_pipeline.py::test_repro_runs_every_stage_for_every_task"),
    (r"dvc repro -f validate@<task>$",
     "tests/stages/test_validate.py::test_a_task_without_cohorts_writes_placeholders (the stage "
     "replaces its outputs; a forced rerun is a plain rerun)"),
    (r"dvc repro -f demo@chest$",
     "tests/test_own_data.py::test_forced_demo_reruns_ingest_only_when_the_folder_changed"),
    (r"dvc exp run -S tasks\.cxr\.train\.backbone=\w+( -S tasks\.cxr\.train\.epochs=\d+)?$",
     "tests/test_dvc_pipeline.py::test_experiments_compare_runs"),
    (r"dvc exp run -S .* evaluate@cxr$", "tests/test_dvc_pipeline.py::test_experiments_compare_runs"),
    (r"dvc exp (show|apply)|^dvc exp run$", "tests/test_dvc_pipeline.py::test_experiments_compare_runs"),
    (r"dvc (metrics|plots) diff", "tests/test_dvc_pipeline.py::test_experiments_compare_runs"),
    (r"dvc (metrics|plots) show$",
     "tests/evaluate/test_dvc_plots.py::test_dvc_renders_the_evaluate_plots_and_metrics"),
    (r"dvc remote add -d team /mnt/share/medvision$|dvc (push|pull|status)$",
     "tests/test_dvc_pipeline.py::test_push_and_pull_through_a_local_remote"),
    (r"dvc remote (add|modify) .*(s3team|gcsteam)",
     "tests/test_readme.py::test_readme_object_storage_remote_lines_configure_dvc"),
    (r"python bench/\w+\.py$", "tests/test_bench.py::test_bench_scripts_run_and_print_their_ratios"),
    (r"python bench/real_data\.py --dataset ",
     "tests/test_bench.py::test_real_data_bench_runs_variants_on_a_dataset_folder"),
)

#: Commands that cannot run here, and why (the suite has no network to clouds, no GPU).
NOT_RUNNABLE: tuple[tuple[str, str], ...] = (
    (r'pip install -e "\.\[gpu\]"$', "pulls tensorflow[and-cuda] (several GB) for a GPU this machine lacks"),
    (r'pip install -e "\.\[jpeg-gpl\]"$',
     "the opt-in GPL-3.0 decoder: CI deliberately runs without it (tests/io/test_jpeg_lossless.py "
     "checks the extra is declared and that GDCM decodes JPEG Lossless alone; bench/decoders.py "
     "compares both)"),
    (r'pip install "dvc\[(s3|gs)\]"$',
     "cloud plugins: no bucket or credentials here (the remote lines are tested)"),
    (r"aws configure|gcloud auth", "cloud credentials: not available here"),
    (r"^dvc add$", "a mention of DVC's own command for a user's alternative layout, not a step here"),
)


def _readme_commands() -> list[str]:
    """Each command the README shows: bash-block lines and inline spans that start with a program."""
    commands = []
    for block in _bash_blocks():
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                commands.append(line)
    programs = r"(?:python3?\.?\d*|dvc|pip|apt-get|TF_CONFIG=|aws|gcloud)"
    for inline in re.findall(rf"`({programs}[^`]*)`", README):
        words = inline.split()
        if len(words) >= 2 or inline.startswith("dvc repro"):
            commands.append(" ".join(words))
    return sorted(set(commands))


def test_every_readme_command_is_exercised():
    unaccounted = []
    for command in _readme_commands():
        runner = next((where for pattern, where in EXERCISED + NOT_RUNNABLE if re.search(pattern, command)),
                      None)
        if runner is None:
            unaccounted.append(command)
    assert not unaccounted, f"README commands nothing exercises (add a test and list it here): {unaccounted}"
    for _, where in EXERCISED:  # the named tests exist
        for ref in re.findall(r"(tests/[\w/]+\.py)::(\w+)", where):
            path, name = ref
            assert re.search(rf"^def {name}\(", (ROOT / path).read_text(encoding="utf-8"), flags=re.M), ref


@pytest.mark.parametrize("stage", ["demo", "ingest", "train", "explain", "evaluate", "report", "predict",
                                   "export", "export-dicom"])
def test_every_stage_has_help(stage):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "pipeline", stage, "--help"], capture_output=True,
                         text=True, cwd=ROOT)
    assert res.returncode == 0 and f"usage: python -m pipeline {stage}" in res.stdout
    assert "--out" in res.stdout


def test_params_reference_documents_every_key():
    """Every field of the typed params has a row in the README's params reference."""
    from pipeline.config import BaseParams, TaskParams

    table = README.split("## Params reference", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = []
    sections = {name: f.annotation for name, f in TaskParams.model_fields.items()
                if isinstance(f.annotation, type) and hasattr(f.annotation, "model_fields")}
    keys = [("base", name) for name in BaseParams.model_fields]
    keys += [(None, name) for name in TaskParams.model_fields if name not in sections and name != "name"]
    keys += [(section, name) for section, model in sections.items() for name in model.model_fields]
    for section, name in keys:
        prefix = "| `base." if section == "base" else (
            "| `tasks.<t>." if section is None else f"| `tasks.<t>.{section}.")
        if not any((line.startswith(prefix) and (f".{name}`" in line or f"`{name}`" in line))
                   or f"`{section}.{name}`" in line for line in rows):
            missing.append(f"{section or 'task'}.{name}")
    assert not missing, f"params without a README row: {missing}"
