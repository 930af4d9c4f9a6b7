"""gradetop diff: the function that changed comes first, per function, per phase, per second, and in the union tree."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import WORKLOADS, gradetop, one_line
from export_helpers import small_profile
from gradetop.model.diff import diff, format_diff, union_tree

SLOWER_ALPHA = {(100, 100): 90}
"""The variant: alpha runs 9 s instead of 6 (90 samples of 0.1 s)."""


def test_the_function_that_changed_is_on_top():
    result = diff(small_profile(), small_profile(SLOWER_ALPHA))
    top = result["functions"][0]
    assert (top["function"], top["file"]) == ("alpha", "train.py")
    # Active time: each thread ran half of its wall time.
    assert top["a_self"] == pytest.approx(3.0) and top["b_self"] == pytest.approx(4.5)
    assert top["d_self"] == pytest.approx(1.5) and top["d_total"] == pytest.approx(1.5)
    main = next(f for f in result["functions"] if f["function"] == "main")
    assert main["d_self"] == 0 and main["d_total"] == pytest.approx(1.5), "a caller's total follows its callee"
    unchanged = next(f for f in result["functions"] if f["function"] == "beta")
    assert unchanged["d_self"] == unchanged["d_total"] == 0
    changes = [abs(f["d_self"]) for f in result["functions"]]
    assert changes == sorted(changes, reverse=True)


def test_wall_time_and_per_second():
    result = diff(small_profile(), small_profile(SLOWER_ALPHA), include_idle=True, per_second=True)
    top = result["functions"][0]
    assert top["function"] == "alpha"
    assert top["d_self"] == pytest.approx(3.0 / 10.0), "3 s more over a 10 s run"
    assert result["unit"] == "seconds per second of run"


def test_phases_are_compared_by_type():
    result = diff(small_profile(), small_profile(SLOWER_ALPHA))
    train = next(p for p in result["phases"] if p["phase"] == "train")
    assert train == {"phase": "train", "a": 4.0, "b": 4.0, "d": 0.0, "a_count": 1, "b_count": 1}


def test_text_form_lists_both_runs_and_the_change():
    text = format_diff(diff(small_profile(), small_profile(SLOWER_ALPHA)), top=3)
    lines = text.splitlines()
    assert lines[0].startswith("A: python train.py") and lines[1].startswith("B: python train.py")
    assert "+1.500" in next(line for line in lines if "alpha (train.py)" in line)
    assert "Phases" in text


def test_union_tree_matches_call_paths_of_both_runs():
    tree = union_tree(small_profile(), small_profile({(100, 100): 30, (100, 101): 0}))
    frames = tree.stacks.frames.frames
    by_name = {frames[tree.stacks.frame[n]].function: n for n in range(1, tree.a.size)
               if tree.stacks.depth[n] == 2 or frames[tree.stacks.frame[n]].function == "child_work"}
    delta = tree.delta
    assert delta[by_name["alpha"]] == pytest.approx(-1.5)
    assert delta[by_name["beta"]] == pytest.approx(-1.5), "beta only in A: all its time is gone"
    assert tree.b.total_s[by_name["beta"]] == 0
    assert delta[by_name["child_work"]] == pytest.approx(0.0)
    assert tree.a.root_s == pytest.approx(5.5) and tree.b.root_s == pytest.approx(2.5)
    assert np.all(tree.a.total_s >= tree.a.self_s - 1e-9)


@pytest.mark.attach
def test_diff_of_two_recorded_variants_names_the_slower_function(tmp_path, ptrace, no_traceback):
    from gradetop.collectors.window import find_pyspy

    files = []
    for name, beta_s in (("a.txt", "0.4"), ("b.txt", "1.4")):
        out = tmp_path / name
        subprocess.run([find_pyspy(), "record", "-f", "raw", "-r", "100", "-o", str(out), "--",
                        sys.executable, str(WORKLOADS / "variant.py"), "0.4", beta_s],
                       capture_output=True, timeout=120, check=True)
        files.append(str(out))
    result = gradetop("diff", *files, "--json")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    top = json.loads(result.stdout)["functions"][0]
    assert top["function"] == "beta" and 0.6 < top["d_self"] < 1.5
    text = gradetop("diff", *files, "--top", "3")
    assert text.returncode == 0 and "beta (variant.py)" in text.stdout.splitlines()[5]


def test_diff_of_a_missing_file_is_one_line(tmp_path, no_traceback):
    good = tmp_path / "good.txt"
    good.write_text("main (x.py:1) 5\n")
    result = gradetop("diff", str(good), str(tmp_path / "nope.gtop"))
    no_traceback(result)
    assert result.returncode != 0
    assert "nope.gtop: no such file" in one_line(result)
