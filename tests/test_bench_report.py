"""`videollm bench report`: the README's Results section generated from benchmarks/results/*.json.

Most tests run on a temporary repository (the recorded results and the model card copied, a README of
its own), so they do not depend on the real README; the last one checks that the real README is up to
date with the recorded results.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from videollm.bench import report
from videollm.bench.provenance import run_record
from videollm.bench.study import build_parser as study_parser
from videollm.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / report.RESULTS
README = f"# project\n\nintro\n\n{report.BEGIN}\nstale text 123\n{report.END}\n\n## After\n\nkept\n"
BENCHMARK_FILES = [
    "decode.json",
    "serve.json",
    "soak.json",
    "train.json",
    "side_vs_adapter.json",
    "study.json",
]
needs_results = pytest.mark.skipif(
    not all((RESULTS / name).is_file() for name in BENCHMARK_FILES),
    reason="benchmarks/results/*.json are not in this checkout",
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository copy: the recorded results, the starter's card, and a README with an empty section."""
    if RESULTS.is_dir():
        shutil.copytree(RESULTS, tmp_path / report.RESULTS)
    else:
        (tmp_path / report.RESULTS).mkdir(parents=True)
    (tmp_path / report.CARD).parent.mkdir(parents=True)
    shutil.copy(REPO / report.CARD, tmp_path / report.CARD)
    (tmp_path / "README.md").write_text(README)
    return tmp_path


def section(root: Path) -> str:
    text = (root / "README.md").read_text()
    return text[text.index(report.BEGIN) : text.index(report.END)]


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_write_then_check_then_drift(repo: Path, capsys):
    assert report.main(["--root", str(repo), "--check"]) == 1  # the stale placeholder differs
    assert (repo / "README.md").read_text() == README  # --check writes nothing
    assert report.main(["--root", str(repo)]) == 0
    text = (repo / "README.md").read_text()
    assert text.startswith("# project\n\nintro\n\n" + report.BEGIN + "\n## Results\n")
    assert text.endswith(report.END + "\n\n## After\n\nkept\n")
    assert "stale text 123" not in text
    assert report.main(["--root", str(repo), "--check"]) == 0
    assert report.main(["--root", str(repo)]) == 0  # idempotent
    assert (repo / "README.md").read_text() == text

    edit_json(repo / report.RESULTS / "train.json", lambda d: d["results"][0].update(samples_per_s=123.456))
    capsys.readouterr()
    assert report.main(["--root", str(repo), "--check"]) == 1
    err = capsys.readouterr().err
    assert "+| single | 1 | — | 123 |" in err and "run `videollm bench report`" in err
    assert report.main(["--root", str(repo)]) == 0
    assert "| single | 1 | — | 123 |" in section(repo)


@needs_results
def test_every_benchmark_is_reported_with_its_command_machine_and_numbers(repo: Path):
    text = report.render(repo)
    for heading in (
        "Transfer-strategy study",
        "Decoding",
        "Serving throughput",
        "Serving soak",
        "Training",
        "Side-tuning",
    ):
        assert f"### {heading}" in text
    assert text.count("Command: `") == 6
    decode = json.loads((RESULTS / "decode.json").read_text())
    first = decode["results"][0]
    row = next(ln for ln in text.splitlines() if ln.startswith(f"| {first['frames']} |"))
    assert report.num(first["best_s"]) in row
    assert f"{decode['machine']['cpus']} CPUs" in text
    train = json.loads((RESULTS / "train.json").read_text())
    assert f"date: {train['date']}" in text
    study = json.loads((RESULTS / "study.json").read_text())
    assert f"{len(study['cells'])} of {len(study['planned'])} cells measured" in text
    for finding in study["findings"]:
        assert finding["claim"] in text
    assert "![accuracy vs visual tokens per connector](benchmarks/results/study_tokens.png)" in text
    assert "![static vs temporal accuracy per strategy](benchmarks/results/study_strategies.png)" in text
    assert "[`videollm/starter/assets/MODEL_CARD.md`](videollm/starter/assets/MODEL_CARD.md)" in text


@needs_results
def test_the_commands_shown_are_accepted_by_their_scripts(repo: Path):
    """Every `--flag` of a rebuilt command is one its benchmark script (or `videollm bench study`) defines."""
    commands = re.findall(r"Command: `([^`]+)`", report.render(repo))
    assert commands
    for command in commands:
        argv = shlex.split(command)
        if argv[:3] == ["videollm", "bench", "study"]:
            study_parser().parse_args(argv[3:])
            continue
        assert argv[0] == ".venv/bin/python", command
        source = (REPO / argv[1]).read_text()
        for flag in (a for a in argv[2:] if a.startswith("--")):
            assert f'"{flag}"' in source, f"{argv[1]} has no {flag}"


def _line_under(text: str, heading: str) -> str:
    lines = text.splitlines()
    return lines[lines.index(heading) + 2]


def test_the_run_record_is_shown_as_recorded(repo: Path):
    """A result with `run_record`'s record shows its command, machine, date and load as recorded."""
    out = repo / report.RESULTS
    run = run_record([str(REPO / "benchmarks" / "soak.py"), "--quick", "--seconds", "5"])
    engine = {"seconds": 5, "clients": 2, "by_status": {"200": 3}, "server_errors_5xx": 0}
    (out / "soak.json").write_text(json.dumps({"model": "m", **run, "engines": {"transformers": engine}}))
    train = {**run_record([str(REPO / "benchmarks" / "train.py"), "--steps", "3"]), "results": []}
    m = train["machine"]
    train["versions"] = {"torch": m["torch"], "deepspeed": "0.19.8"}  # torch named by both: shown once
    (out / "train.json").write_text(json.dumps(train))
    study_argv = [str(REPO / ".venv" / "bin" / "videollm"), "bench", "study", "--cells", "base", "--resume"]
    study = {"budget": "small", **run_record(study_argv), "created": "2000-01-01T00:00:00Z", "cells": {}}
    (out / "study.json").write_text(json.dumps(study))
    text = report.render(repo)

    soak = _line_under(text, "### Serving soak")
    assert run["command"] == ".venv/bin/python benchmarks/soak.py --quick --seconds 5"
    assert soak.startswith(f"Command: `{run['command']}` · machine: {m['platform']}, {m['processor']}, ")
    expected = [f"{m['cpu_count']} CPUs", f"Python {m['python']}", f"torch {m['torch']}"]
    expected += [f"transformers {m['transformers']}", f"{m['torch_threads']} torch threads"]
    expected += [f"date: {run['date']}", "load average at start (1/5/15 min): "]
    expected += [" / ".join(f"{x:.2f}" for x in run["load_average"]), "data: `benchmarks/results/soak.json`"]
    expected += [f"vllm {m['vllm']}"] if m["vllm"] else []
    assert all(part in soak for part in expected), (expected, soak)
    training = _line_under(text, "### Training throughput")
    assert training.startswith("Command: `.venv/bin/python benchmarks/train.py --steps 3` · ")
    assert training.count(f"torch {m['torch']}") == 1 and "deepspeed 0.19.8" in training
    first = _line_under(text, "### Transfer-strategy study")
    assert first.startswith("Command: `videollm bench study --cells base --resume` · ")
    assert f"date: {study['date']}" in first  # when the run started, not when the file was written


def test_missed_targets_show_as_missed(repo: Path):
    out = repo / report.RESULTS
    edit_json(out / "serve.json", lambda d: d["ratios"].update(vllm_over_transformers_at_8=1.2))
    edit_json(out / "decode.json", lambda d: [t.update(met=False) for t in d["targets"]])
    edit_json(out / "soak.json", lambda d: d["engines"]["vllm"].update(server_errors_5xx=3))

    def break_baseline(d):
        for f in d["findings"]:
            if f["id"] == "baseline_near_chance":
                f["holds"] = False

    edit_json(out / "study.json", break_baseline)
    text = report.render(repo)
    assert "| `vllm_over_transformers_at_8` | ≥ 1.5 | 1.2 | **missed** |" in text
    decode_targets = [ln for ln in text.splitlines() if ln.startswith("| videollm exact (pyav) ≥")]
    assert decode_targets and all(ln.endswith("| **missed** |") for ln in decode_targets)
    assert "| 3 (**missed**) |" in text
    assert (
        "the single-frame baseline is near chance on temporal questions (within 10 points): **does not hold**"
        in text
    )


def test_partial_and_missing_results_read_not_measured(repo: Path):
    out = repo / report.RESULTS
    for name in ("serve.json", "soak.json", "study_tokens.png"):
        (out / name).unlink(missing_ok=True)
    (out / "train.json").write_text(json.dumps({"recipe": {"steps": 3}, "results": [{"config": "single"}]}))
    (out / "side_vs_adapter.json").write_text(json.dumps({"cpu": {"results": {"side": {"step_s": 1.5}}}}))
    study = {
        "budget": "small",
        "planned": ["image__single_frame__baseline", "lora__pool3d__hi"],
        "cells": {
            "lora__pool3d__hi": {"cell": "lora__pool3d__hi", "visual_tokens": 32, "mc": {"temporal": 61.0}}
        },
    }
    (out / "study.json").write_text(json.dumps(study))
    text = report.render(repo)

    assert (
        "not measured: `benchmarks/results/serve.json` is missing; run `.venv/bin/python benchmarks/serve.py`"
        in text
    )
    assert "not measured: `benchmarks/results/soak.json` is missing" in text
    assert "| single | — | — | — | — | — | — | — |" in text
    assert "| side | — | — | 1.5 | — | — |" in text
    assert "1 of 2 cells measured" in text
    assert "| lora__pool3d__hi | — | 32 | — | — | — | — | 61 | — | — | — | — |" in text
    assert "Not measured yet: `image__single_frame__baseline`." in text
    # no recorded findings: recomputed from the cells, each one the study cannot decide says so
    assert "temporal pooling hurts temporal questions (PLLaVA): not measured" in text
    assert "Plot accuracy vs visual tokens per connector: not measured" in text
    assert "![static vs temporal accuracy per strategy]" in text

    (out / "study.json").write_text("{}")
    assert "0 of 0 cells measured" in report.render(repo)
    (out / "decode.json").write_text(json.dumps({"results": "garbage"}))
    assert "### Decoding\n\nCommand: `.venv/bin/python benchmarks/decode.py`" in report.render(repo)
    (out / "decode.json").write_text(json.dumps({"video": [640, 360]}))
    assert "not measured: `benchmarks/results/decode.json` has an unexpected structure (AttributeError(" in (
        report.render(repo)
    )


def test_starter_section_quotes_the_card_only():
    card = (
        "# card\n\n**Status: trained. Targets\n(≥ 90 % static) met.** More.\n\nHeld-out exact match:\n\n"
        "| after | all | static | temporal |\n|---|---|---|---|\n| finetune | 91.0 | 95.5 | 85.1 |\n\n"
        "## Reproduce\n\n```\npython -m videollm.starter.train train/recipes/starter.yaml   # writes runs/\n```\n"
    )
    text = "\n".join(report.starter_section(card, "card.md"))
    assert "**Status: trained. Targets (≥ 90 % static) met.**" in text
    assert "From the card — Held-out exact match:" in text
    assert "| finetune | 91.0 | 95.5 | 85.1 |" in text
    assert "Command (from the card): `python -m videollm.starter.train train/recipes/starter.yaml`" in text
    bare = "\n".join(report.starter_section("# card\n\nno numbers yet\n", "card.md"))
    assert "Starter accuracy: not measured (the card has no static/temporal accuracy table)" in bare
    assert "not measured (the card is missing)" in "\n".join(report.starter_section(None, "card.md"))


def test_bad_inputs_name_the_file_and_the_fix(repo: Path, capsys):
    (repo / "README.md").write_text("# project\n\nno markers\n")
    assert report.main(["--root", str(repo)]) == 2
    err = capsys.readouterr().err
    assert "README.md" in err and report.BEGIN in err and "add them" in err

    (repo / "README.md").write_text(README)
    (repo / report.RESULTS / "decode.json").write_text("{not json")
    assert report.main(["--root", str(repo), "--check"]) == 2
    err = capsys.readouterr().err
    assert "decode.json: not valid JSON" in err and "rerun the benchmark" in err
    assert (repo / "README.md").read_text() == README

    assert report.main(["--root", str(repo / "nowhere")]) == 2
    assert "pass --root" in capsys.readouterr().err


def test_cli_wiring(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["bench", "report", "--help"])
    assert e.value.code == 0
    assert "videollm bench report" in capsys.readouterr().out


@needs_results
def test_the_real_readme_is_up_to_date(capsys):
    rc = report.main(["--root", str(REPO), "--check"])
    assert rc == 0, (
        "README.md's Results section is stale: run `videollm bench report`\n" + capsys.readouterr().err
    )
