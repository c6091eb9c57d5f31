"""The course contract: nine notebooks, each with objectives, prerequisites, time, a predict-first prompt,
an exercise with a self-check, a summary with what to try next, and asserts behind its claims."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE = ["00_quickstart", "01_audio_in_features_out", "02_which_layer_knows_what", "03_aggregator_vs_best_layer",
          "04_layer_similarity", "05_comparing_models", "06_explorer", "07_your_own_music", "08_pretraining"]


def _cells(name):
    return json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]


def _text(cell):
    return "".join(cell["source"])


def test_the_course_is_these_nine_notebooks_in_order():
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")) == COURSE


@pytest.mark.parametrize("name", COURSE)
def test_each_notebook_opens_with_its_question_objectives_prerequisites_and_time(name):
    first = _cells(name)[0]
    text = _text(first)
    assert first["cell_type"] == "markdown" and text.startswith(f"# {name[:2]} · ")
    assert "**You will**" in text, "an objectives list, introduced by **You will**"
    assert "**Prerequisites.**" in text
    assert re.search(r"\*\*Time\.\*\*[^\n]*minute", text), "**Time.** … minutes on a 2-core CPU"


@pytest.mark.parametrize("name", COURSE)
def test_each_notebook_asks_to_predict_first_and_has_an_exercise_with_a_self_check(name):
    cells = _cells(name)
    assert any(c["cell_type"] == "markdown" and "**Predict first.**" in _text(c) for c in cells)
    exercise = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and "# your code here" in _text(c)]
    assert exercise, "an exercise cell with '# your code here'"
    checks = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and _text(c).startswith("# self-check")]
    assert checks and checks[-1] > exercise[0], "a '# self-check' cell after the exercise"
    assert all("assert" in _text(cells[i]) for i in checks)


@pytest.mark.parametrize("name", COURSE)
def test_each_notebook_backs_its_claims_with_asserts_and_ends_with_a_summary_and_next_steps(name):
    cells = _cells(name)
    asserts = sum(len(re.findall(r"^\s*(assert |np\.testing\.assert)", _text(c), re.M))
                  for c in cells if c["cell_type"] == "code" and not _text(c).startswith("# self-check"))
    assert asserts >= 3, f"{asserts} asserts outside the self-check: every claim in the text needs one"
    tail = "\n".join(_text(c) for c in cells[-3:] if c["cell_type"] == "markdown")
    assert "## Summary" in tail and "What to try next" in tail


@pytest.mark.parametrize("name", [n for n in COURSE if n != "08_pretraining"])
def test_notebooks_on_the_chosen_model_say_what_its_figures_can_show(name):
    code = "\n".join(_text(c) for c in _cells(name) if c["cell_type"] == "code")
    if "load_model_with_fallback" in code:
        assert "what_you_are_seeing(" in code


def test_what_you_are_seeing_tells_trained_untrained_and_fallback_apart():
    import m2v_lab as m2v

    tiny = m2v.load_model("tiny-music2vec")
    assert "random weights, untrained" in m2v.course.what_you_are_seeing(tiny)
    mini = m2v.load_model("music2vec-mini")
    text = m2v.course.what_you_are_seeing(mini)
    assert "pre-trained" in text and "random weights" not in text and "offline fallback" not in text
    mini.facts["fallback"] = "m-a-p/music2vec-v1 could not be loaded: offline"
    assert "offline fallback" in m2v.course.what_you_are_seeing(mini)
