"""The project's promises about itself: two commands, agreeing environment files, clean module layering."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = _pyproject()["project"]
    assert env["channels"] == ["conda-forge"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    major, minor = map(int, python.split("=")[1].split(".")[:2])
    lowest = tuple(map(int, re.search(r">=\s*(\d+\.\d+)", project["requires-python"]).group(1).split(".")))
    assert (major, minor) >= lowest
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[dev]" in pip, "the conda env must install this package (and so its pyproject dependencies)"
    pinned_here = {re.split(r"[=<>!~]", p)[0]: p for p in pip if not p.startswith("-")}
    pinned_there = {re.split(r"[=<>!~ ]", d)[0]: d for d in project["dependencies"]}
    makefile = (ROOT / "Makefile").read_text()
    for name, spec in pinned_here.items():
        if name in pinned_there:
            assert pinned_there[name] == spec, f"{name}: environment.yml says {spec}, pyproject {pinned_there[name]}"
        else:  # installed outside pyproject (e.g. --no-deps): the venv route must install it too
            assert spec in makefile, f"{spec} is in environment.yml but the Makefile's venv route lacks it"
    assert pinned_there["torch"] == "torch==2.13.0"


def test_readme_shows_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab: \$\(STAMP\)", makefile, re.M) and re.search(r"^test: \$\(STAMP\)", makefile, re.M)


def test_pure_computation_modules_never_import_plotting_or_widgets():
    code = ("import sys, m2v_lab, m2v_lab.audio, m2v_lab.models, m2v_lab.extract, m2v_lab.cache, "
            "m2v_lab.features, m2v_lab.similarity, m2v_lab.probing, m2v_lab.datasets, m2v_lab.projection, "
            "m2v_lab.pretrain, m2v_lab.pretrain.evaluate, m2v_lab.pretrain.classroom, m2v_lab.cli, m2v_lab.engines\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'ipywidgets', 'seaborn'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_notebooks_are_saved_executed_in_order_without_widget_state():
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
        assert counts == list(range(1, len(counts) + 1)), f"{path.name}: Restart & Run All, then save"
        assert "widgets" not in nb.get("metadata", {}), f"{path.name}: strip stored widget state"


def test_notebook_outputs_name_no_local_paths():
    """Committed outputs are read on other machines: no home, temp or checkout paths in them."""
    import json
    import re

    local = re.compile(r"(/tmp/|/root/|/home/|/Users/|/work/|[A-Z]:\\Users)")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            for out in cell.get("outputs", []):
                texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items() if k.startswith("text/")]
                for text in texts:
                    text = "".join(text) if isinstance(text, list) else text
                    hit = local.search(text)
                    assert hit is None, f"{path.name} cell {i}: output shows a local path ({hit.group(0)}…)"
