"""What the course notebooks say about the model their figures come from.

A figure is only as true as the model behind it: the same CKA map means "block structure" for
music2vec-v1 and "the architecture, before any learning" for a random network.  The notebooks call
:func:`what_you_are_seeing` right after loading the model, so the saved outputs say which case they are.
"""

from __future__ import annotations

__all__ = ["what_you_are_seeing", "MARBLE_MUSIC2VEC"]

#: MARBLE's published music2vec-v1 row (Yuan et al., 2023; constrained track: frozen model, MLP probe, ×100):
#: the numbers a run on the real datasets with the hub model is compared with.
MARBLE_MUSIC2VEC = (
    {"task": "GTZAN genre", "metric": "accuracy", "music2vec-v1": 74.1},
    {"task": "NSynth instrument", "metric": "accuracy", "music2vec-v1": 69.3},
    {"task": "NSynth pitch", "metric": "accuracy", "music2vec-v1": 93.1},
    {"task": "MagnaTagATune tags", "metric": "ROC-AUC", "music2vec-v1": 90.0},
    {"task": "MagnaTagATune tags", "metric": "average precision", "music2vec-v1": 36.2},
    {"task": "GiantSteps key", "metric": "weighted accuracy", "music2vec-v1": 50.6},
)


def what_you_are_seeing(model) -> str:
    """A short Markdown paragraph: what figures made with ``model`` can and cannot show.

    Parameters
    ----------
    model : LoadedModel
        As :func:`m2v_lab.load_model_with_fallback` returns it (``model.facts["fallback"]``
        set when the requested model could not be loaded).

    Returns
    -------
    str
        Markdown: the model's name and depth, trained or not, whether it is the offline
        fallback, and how to read the figures that follow.
    """
    depth = f"{len(model.layer_names) - 1} blocks"
    fallback = model.facts.get("fallback")
    head = f"**What you are seeing:** `{model.name}` ({depth}"
    if not model.trained:
        return (f"{head}, **random weights, untrained**). Every figure below shows what the *architecture* gives "
                "for free, not what pre-training learns: probe curves near the random-twin baseline, CKA maps high "
                "almost everywhere (random layers mix their input similarly). Read them as the control, and run "
                "with a trained model (`M2V_LAB_MODEL=m-a-p/music2vec-v1`) for the real picture.")
    if fallback or model.name == "music2vec-mini":
        why = " — the offline fallback: the model you asked for could not be loaded" if fallback else ""
        return (f"{head}, pre-trained{why}). music2vec-mini is music2vec's front end with 4 narrow blocks "
                "(256 wide), pre-trained by m2v_lab for minutes on a CPU (two hours of orchestral game music "
                "and MIDI renders; card: `data/models/music2vec-mini/README.md`). Its layers learned what its "
                "chroma targets ask for, pitch class that transfers across octaves (0.91 against its random twins' "
                "0.39 on held-out notes), and little else (its down-weighted MFCC targets added no measurable "
                "timbre): timbre, chord quality and mode stay at or below the twins' level, so compare every "
                "curve with the random twin's. music2vec-v1 (12 blocks × 768, 1,000 hours) learned far more; set "
                "`M2V_LAB_MODEL=m-a-p/music2vec-v1` on a machine with the Hugging Face hub to see it.")
    return (f"{head}, pre-trained: {model.spec.paradigm}). These are the real model's layers; published layer-wise "
            "results (MARBLE) were measured on models like this one, on far larger "
            "datasets than the teaching set — expect the same trends, not the same numbers.")
