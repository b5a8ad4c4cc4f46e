"""minivae train --model semisupervised | conditional [--prior learned] --resume, --override-settings and --graph, end to end on the
labelled bars (tests/test_cli_m2.py's folder): 1 epoch then --resume to 2, and 2 with --graph, reach the 2-epoch run's
checkpoint bit for bit (metrics included); another setting is one line naming it, --override-settings goes on and
records it; M2's other --labels (another α, another split) is refused naming --labels; --resume with no checkpoint is
one line."""
import csv

import pytest

from minivae import training
from tests import test_cli_conditional, test_cli_m2
from tests.test_cli import one_error_line, run
from tests.test_labelled_resume import assert_same_run

folder = test_cli_m2.folder  # the fixture of the labelled bars' IDX folder, shared
SMALL = {"semisupervised": [*test_cli_m2.SMALL, "--limit", "100"],
         "conditional": [*test_cli_conditional.SMALL, "--limit", "100"],
         "conditional-learned": [*test_cli_conditional.SMALL, "--prior", "learned", "--limit", "100"]}


@pytest.mark.parametrize("model", list(SMALL))
def test_resume_and_graph_reach_the_uninterrupted_run(folder, tmp_path, monkeypatch, model):
    """(The --graph run records one step plan, and only it: counted at training.compile_step.)"""
    plans, compile_step = [], training.compile_step
    monkeypatch.setattr(training, "compile_step", lambda *args, **kw: plans.append(compile_step(*args, **kw)) or plans[-1])
    args = ["train", *SMALL[model], "--data", folder, "--dynamic-binarization"]
    whole, cut, graph = tmp_path / "whole", tmp_path / "cut", tmp_path / "graph"
    assert run(*args, "--epochs", 2, "--out", whole) == 0
    assert run(*args, "--epochs", 1, "--out", cut) == 0
    assert run(*args, "--epochs", 2, "--out", cut, "--resume") == 0
    assert plans == []
    assert run(*args, "--epochs", 2, "--out", graph, "--graph") == 0
    assert len(plans) == 1 and plans[0].replays > 0
    assert_same_run(whole, cut)
    assert_same_run(whole, graph)


@pytest.mark.parametrize("model", list(SMALL))
def test_another_setting_is_one_line_and_override_settings_records_it(folder, tmp_path, capsys, model):
    args, out = ["train", *SMALL[model], "--data", folder, "--out", tmp_path / "run"], tmp_path / "run"
    assert run(*args, "--resume") == 1
    assert "holds no checkpoint to resume: start the run without --resume" in one_error_line(capsys)
    assert run(*args, "--epochs", 1) == 0
    capsys.readouterr()
    assert run(*args, "--epochs", 2, "--resume", "--clip", 3) == 1
    assert "its settings differ: --clip (checkpoint None, now 3.0)" in one_error_line(capsys)
    assert run(*args, "--epochs", 2, "--resume", "--clip", 3, "--override-settings") == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["settings_changed"] for r in rows] == ["", "--clip (checkpoint None, now 3.0)"]


def test_a_resume_with_the_other_prior_is_one_line(folder, tmp_path, capsys):
    args, out = ["train", *SMALL["conditional"], "--data", folder, "--epochs", 1], tmp_path / "run"
    assert run(*args, "--out", out) == 0
    capsys.readouterr()
    assert run(*args[:-1], 2, "--prior", "learned", "--out", out, "--resume") == 1
    assert "holds a conditional model of another shape: --prior (checkpoint standard, now learned)" in one_error_line(capsys)


def test_m2_s_other_labels_are_refused_naming_labels(folder, tmp_path, capsys):
    args, out = ["train", *SMALL["semisupervised"], "--data", folder], tmp_path / "run"
    assert run(*args, "--epochs", 1, "--out", out) == 0
    capsys.readouterr()
    assert run(*args, "--labels", 12, "--epochs", 2, "--out", out, "--resume") == 1
    assert "holds a semisupervised model of another shape: --labels or --data (α = 0.1·N/N_l" in one_error_line(capsys)
