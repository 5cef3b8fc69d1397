"""The shipped logging policies load and still score what logging_policy/README.md says."""

from __future__ import annotations

from conftest import ROOT, run_script

from morel.policies import load_policy

README = (ROOT / "logging_policy" / "README.md").read_text()
ROWS = [line for line in README.split("<!-- returns -->")[1].split("<!-- /returns -->")[0]
        .splitlines() if line.startswith("| ") and ".pt" in line]


def test_every_shipped_file_is_in_the_table():
    files = sorted(p.name for p in (ROOT / "logging_policy").glob("*.pt"))
    assert files and files == sorted(r.split("|")[1].strip() for r in ROWS)


def test_returns_match_the_readme():
    files = [ROOT / "logging_policy" / r.split("|")[1].strip() for r in ROWS]
    for path in files:
        _, meta = load_policy(path)
        assert path.name.startswith(meta["env_name"].lower().replace("-", "_"))
        assert meta["trained_by"] == "train_policy.py"
    out = run_script("utils/evaluate_policy.py", "--policy", *files, "--episodes", "10",
                     "--seed", "0")
    assert out.returncode == 0, out.stderr
    measured = [line for line in out.stdout.splitlines() if ".pt" in line]
    assert measured == ROWS
