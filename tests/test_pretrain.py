"""m2v_lab.pretrain: masks, targets, objectives, the collapse monitor and the resumable loop, on tiny models."""

import json

import numpy as np
import pytest
import torch

from m2v_lab import pretrain as pt
from m2v_lab.errors import OptionError
from m2v_lab.pretrain.data import chunked_features
from m2v_lab.pretrain.forward import front_end, student_forward

RATE = 16000


def tiny_model(seed=0):
    return pt.build_model(pt.mini_config(hidden_size=32, num_layers=3, num_heads=2, conv_dim=16), seed=seed)


def tones(n=4, seconds=1.5, seed=0):
    """Harmonic tones with a little noise: distinct clips, deterministic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    out = []
    for i in range(n):
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5)) * np.exp(-t * rng.uniform(0.5, 3))
        out.append((x + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return out


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    yield


# -- configuration -------------------------------------------------------------------------------

def test_mini_config_has_the_family_front_end_and_fits_the_budget():
    config = pt.mini_config()
    assert tuple(config.conv_kernel) == (10, 3, 3, 3, 3, 2, 2) and tuple(config.conv_stride) == (5, 2, 2, 2, 2, 2, 2)
    assert int(np.prod(config.conv_stride)) == 320
    model = pt.build_model(config, seed=0)
    n_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert n_bytes == pt.weights_bytes(config) <= pt.MAX_MINI_BYTES
    with torch.no_grad():
        assert model(torch.zeros(1, 16000)).last_hidden_state.shape == (1, (16000 - 400) // 320 + 1, 256)
    with pytest.raises(OptionError, match="budget"):
        pt.mini_config(hidden_size=384, num_layers=6)


# -- masking ---------------------------------------------------------------------------------------

def test_span_masks_are_transformers_compute_mask_indices_given_the_same_rng():
    from transformers.models.data2vec.modeling_data2vec_audio import _compute_mask_indices

    for seed, (prob, span, frames) in enumerate([(0.65, 10, 149), (0.8, 10, 249), (0.3, 4, 37)]):
        np.random.seed(seed)
        expected = _compute_mask_indices((5, frames), prob, span, min_masks=1)
        got = pt.span_mask(5, frames, pt.MaskConfig(prob, span), rng=np.random.RandomState(seed))
        assert np.array_equal(got, expected)


def test_masked_fraction_matches_the_configuration():
    rng = np.random.default_rng(0)
    for config in (pt.DATA2VEC_MASK, pt.HUBERT_MASK, pt.MaskConfig(0.3, 5)):
        masks = np.concatenate([pt.span_mask(8, 149, config, rng=rng) for _ in range(150)])
        assert masks.mean() == pytest.approx(config.expected_fraction(149), abs=0.01)
    assert pt.DATA2VEC_MASK.expected_fraction(149) == pytest.approx(0.496, abs=0.01)  # 0.65 is an upper bound
    exact = pt.MaskConfig(0.65, 10, mode="exact")
    for frames in (149, 50, 13):
        masks = pt.span_mask(16, frames, exact, rng=rng)
        assert (masks.sum(axis=1) == round(0.65 * frames)).all()
    same = [pt.span_mask(3, 149, exact, rng=np.random.default_rng(5)) for _ in range(2)]
    assert np.array_equal(*same)


# -- the model in pieces ---------------------------------------------------------------------------

def test_student_forward_is_the_model_forward_with_mask_time_indices():
    model = tiny_model().eval()
    x = torch.from_numpy(np.stack(tones(2)))
    mask = torch.from_numpy(pt.span_mask(2, pt.frame_count(x.shape[1]), rng=np.random.default_rng(0)))
    with torch.no_grad():
        _, last = student_forward(model, x, mask)
        expected = model(x, mask_time_indices=mask).last_hidden_state
    assert torch.equal(last, expected)


def test_data2vec_targets_are_the_top_k_ffn_outputs_instance_normed_and_averaged():
    model = tiny_model().eval()
    enc = model.encoder
    x = torch.from_numpy(np.stack(tones(2)))
    with torch.no_grad():
        hidden = front_end(model, x)
        targets, layers = pt.data2vec_targets(enc, hidden, top_k=2, return_layers=True)
        # the post-LN block written out: attention, residual, LayerNorm, FFN (before its residual), ...
        h = enc.layer_norm(hidden + enc.pos_conv_embed(hidden))
        ffn = []
        for block in enc.layers:
            a = block.attention(h)[0]
            h = block.layer_norm(h + a)
            f = block.feed_forward(h)
            ffn.append(f)
            h = block.final_layer_norm(h + f)
        normed = [(f - f.mean(1, keepdim=True)) / torch.sqrt(f.var(1, unbiased=False, keepdim=True) + 1e-5)
                  for f in ffn[-2:]]
    assert len(layers) == 2
    for got, want in zip(layers, normed):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got.mean(1), torch.zeros_like(got.mean(1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(targets, (normed[0] + normed[1]) / 2, atol=1e-5, rtol=1e-4)


# -- acoustic targets ------------------------------------------------------------------------------

def test_frame_features_sit_on_the_model_frame_grid():
    wave = tones(1, seconds=1.23)[0]
    wave = (wave - wave.mean()) / wave.std()
    frames = (len(wave) - 400) // 320 + 1
    for kind, dim in pt.FEATURE_KINDS.items():
        assert pt.frame_features(wave, kind).shape == (frames, dim)
    assert pt.frame_features(wave, "logmel+chroma").shape == (frames, 52)
    long = np.tile(wave, 30)  # 37 s: three chunks with context
    for kind in ("logmel", "chroma"):
        np.testing.assert_allclose(chunked_features(long, kind), pt.frame_features(long, kind), atol=1e-4, rtol=1e-4)


def test_codebooks_are_deterministic_given_the_seed():
    feats = [pt.frame_features((w - w.mean()) / w.std(), "logmel") for w in tones(6)]
    a = pt.Codebook.fit("logmel", "logmel", feats, k=8, seed=3, max_frames=500)
    b = pt.Codebook.fit("logmel", "logmel", feats, k=8, seed=3, max_frames=500)
    c = pt.Codebook.fit("logmel", "logmel", feats, k=8, seed=4, max_frames=500)
    assert a.digest() == b.digest() and a.digest() != c.digest()
    assert np.array_equal(a.assign(feats[0]), b.assign(feats[0]))
    assert a.assign(feats[0]).dtype == np.int64 and a.assign(feats[0]).max() < 8
    assert pt.Codebook.from_dict(json.loads(json.dumps(a.to_dict()))).digest() == a.digest()


# -- objectives ------------------------------------------------------------------------------------

def corpus_with_targets(seconds=1.5, n=4):
    corpus = pt.AudioCorpus.from_arrays(tones(n, seconds=seconds))
    book = corpus.fit_codebook("logmel", "logmel", k=6, seed=0)
    chroma = corpus.fit_codebook("chroma", "chroma", k=4, seed=0)
    corpus.add_codes(book)
    corpus.add_codes(chroma)
    corpus.add_frames("cqt", pt.FrameStandardizer.fit("cqt", corpus.features("cqt")))
    return corpus, [book, chroma]


def fixed_batch(corpus, objective, seed=0, batch_size=4):
    sampler = pt.CropSampler(corpus, crop_seconds=1.0)
    rng = np.random.default_rng(seed)
    waves, targets, refs = sampler.sample(rng, batch_size, objective.target_names)
    mask = pt.span_mask(batch_size, sampler.crop_frames, objective.mask, rng=rng)
    return pt.Batch(torch.from_numpy(waves), torch.from_numpy(mask),
                    {k: torch.from_numpy(v) for k, v in targets.items()})


@pytest.mark.parametrize("which", ["data2vec", "mlm", "mlm+cqt", "mlm+data2vec"])
def test_a_few_steps_reduce_each_objectives_loss_on_a_fixed_batch(which):
    corpus, books = corpus_with_targets()
    torch.manual_seed(0)
    model = tiny_model()
    d2v = lambda: pt.Data2VecObjective(model, top_k=2, ema_start=0.99, ema_end=0.999, ema_anneal_steps=100)
    objective = {"data2vec": d2v, "mlm": lambda: pt.MLMObjective(model, books),
                 "mlm+cqt": lambda: pt.MLMObjective(model, books, cqt_dim=72),
                 "mlm+data2vec": lambda: pt.CombinedObjective([pt.MLMObjective(model, books), d2v()])}[which]()
    batch = fixed_batch(corpus, objective)
    params = [p for p in list(model.parameters()) + list(objective.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    model.train()
    losses = []
    for step in range(12):
        loss, stats = objective(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        objective.after_step(model, step)
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_mlm_weights_each_codebooks_loss_and_its_unmasked_frames_separately():
    corpus, books = corpus_with_targets()
    model = tiny_model()
    plain = pt.MLMObjective(model, books)
    batch = fixed_batch(corpus, plain)
    model.eval()

    def terms(objective):
        with torch.no_grad():
            hidden, last = student_forward(model, batch.input_values, batch.mask)
            return {k: float(v) for k, v in objective.terms(model, hidden, last, batch, 0)[0].items()}

    base = terms(plain)
    weighted = terms(pt.MLMObjective(model, books, codebook_weights={"chroma": 0.25}))
    assert weighted["mlm_chroma"] == pytest.approx(0.25 * base["mlm_chroma"], rel=1e-5)
    assert weighted["mlm_logmel"] == pytest.approx(base["mlm_logmel"], rel=1e-5)
    everywhere = terms(pt.MLMObjective(model, books, unmasked_weight=1.0))
    chroma_only = terms(pt.MLMObjective(model, books, unmasked_weight={"chroma": 1.0}))
    assert chroma_only["mlm_chroma"] == pytest.approx(everywhere["mlm_chroma"], rel=1e-5)
    assert chroma_only["mlm_logmel"] == pytest.approx(base["mlm_logmel"], rel=1e-5) != everywhere["mlm_logmel"]
    described = pt.MLMObjective(model, books, unmasked_weight={"chroma": 1.0}).describe()
    assert described["unmasked_weight"] == {"logmel": 0.0, "chroma": 1.0} and described["codebook_weights"] == 1.0
    with pytest.raises(OptionError, match="mfcc"):
        pt.MLMObjective(model, books, codebook_weights={"mfcc": 0.5})


def test_the_ema_teacher_never_receives_gradients_and_follows_the_student():
    corpus, _ = corpus_with_targets()
    model = tiny_model()
    objective = pt.Data2VecObjective(model, top_k=2, ema_start=0.9, ema_end=0.99, ema_anneal_steps=10)
    batch = fixed_batch(corpus, objective)
    opt = torch.optim.SGD([p for p in list(model.parameters()) + list(objective.parameters()) if p.requires_grad],
                          lr=0.1)
    name = "layers.0.feed_forward.output_dense.weight"
    for step in range(3):
        teacher_before = dict(objective.teacher.named_parameters())[name].detach().clone()
        loss, _ = objective(model, batch, step)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None and not p.requires_grad for p in objective.teacher.parameters())
        assert model.encoder.layers[0].feed_forward.output_dense.weight.grad is not None
        opt.step()
        objective.after_step(model, step)
        decay = pt.ema_decay(step + 1, 0.9, 0.99, 10)
        student = dict(model.encoder.named_parameters())[name].detach()
        torch.testing.assert_close(dict(objective.teacher.named_parameters())[name],
                                   decay * teacher_before + (1 - decay) * student)
        for (n, t), s in zip(objective.teacher.named_parameters(), model.encoder.parameters()):
            if n.startswith("pos_conv_embed."):
                assert torch.equal(t, s)  # copied, as fairseq's ema_layers_only
    assert not objective.teacher.training
    objective.train()
    assert not objective.teacher.training
    assert pt.ema_decay(0, 0.999, 0.9999, 100) == 0.999 and pt.ema_decay(500, 0.999, 0.9999, 100) == 0.9999


# -- the collapse monitor --------------------------------------------------------------------------

def test_the_collapse_monitor_flags_a_position_only_target():
    rng = np.random.default_rng(0)
    clips, frames, dim = 6, 100, 16
    position = np.sin(np.arange(frames)[:, None] * rng.uniform(0.05, 0.5, dim))[None].repeat(clips, 0)
    only_position = pt.collapse_stats(position + 1e-3 * rng.standard_normal(position.shape))
    assert only_position["collapsed"] == 1.0 and only_position["position_share"] > 0.95
    assert only_position["var_clips"] < 1e-5 < only_position["var_frames"]
    audio = pt.collapse_stats(rng.standard_normal((clips, frames, dim)))
    assert audio["collapsed"] == 0.0 and abs(audio["position_share"]) < 0.05
    constant = pt.collapse_stats(np.ones((clips, frames, dim)))
    assert constant["collapsed"] == 1.0


# -- the loop --------------------------------------------------------------------------------------

def _run(folder, *, stop_at=None, seed_init=0, lr=1e-3, corpus=None):
    corpus = corpus or corpus_with_targets(seconds=1.5, n=3)[0]
    model = tiny_model(seed_init)
    books = {"logmel": 6, "chroma": 4}
    objective = pt.CombinedObjective([pt.MLMObjective(model, books, cqt_dim=72),
                                      pt.Data2VecObjective(model, top_k=2, ema_anneal_steps=10)])
    result = pt.pretrain(model, corpus, objective, steps=6, batch_size=2, crop_seconds=1.0, lr=lr, seed=7,
                         checkpoint_dir=folder, checkpoint_every=2, snapshot_every=3, log_every=1, progress=False,
                         stop_at=stop_at, validation=corpus, validation_batches=1, validate_every=3)
    return model, objective, result


def test_pretrain_resumes_bit_exactly_and_logs(tmp_path):
    corpus = corpus_with_targets(seconds=1.5, n=3)[0]
    straight, straight_obj, full = _run(tmp_path / "a", corpus=corpus)
    _, _, first = _run(tmp_path / "b", stop_at=3, corpus=corpus)
    assert first.stopped_early and first.steps_done == 3
    # another initialisation: everything must come from the checkpoint
    resumed, resumed_obj, second = _run(tmp_path / "b", seed_init=99, corpus=corpus)
    assert not second.stopped_early and second.steps_done == 6
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight_obj.state_dict().values(), resumed_obj.state_dict().values()):
        assert torch.equal(a, b)
    assert full.history["loss"].tolist() == second.history["loss"].tolist()
    assert len(full.history) == 6 and {"lr", "grad_norm", "audio_per_second", "mlm_logmel", "d2v", "cqt",
                                       "target_position_share", "rep_var_clips"} <= set(full.history.columns)
    assert full.validation["step"].tolist() == [3, 6] and "val_loss" in full.validation
    assert [s for s, _ in full.snapshots] == [3, 6]
    for name in ("history.csv", "validation.csv", "run.json", "latest.pt"):
        assert (tmp_path / "a" / name).is_file()
    reloaded = pt.load_snapshot(tiny_model(5), full.snapshots[-1][1])
    for a, b in zip(straight.state_dict().values(), reloaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(OptionError, match="lr"):
        _run(tmp_path / "a", lr=2e-3, corpus=corpus)


def test_pretrain_refuses_a_corpus_without_the_objectives_targets():
    corpus = pt.AudioCorpus.from_arrays(tones(2))
    model = tiny_model()
    with pytest.raises(OptionError, match="add_codes"):
        pt.pretrain(model, corpus, pt.MLMObjective(model, {"logmel": 6}), steps=1, crop_seconds=1.0, progress=False)


def test_lr_schedule_warms_up_and_decays():
    rates = [pt.lr_at(s, steps=100, lr=1e-3, warmup=0.1) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and max(rates) == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(5e-5, rel=0.05)
    tri = [pt.lr_at(s, steps=100, lr=1e-3, warmup=0.1, schedule="tri_stage", final_lr_scale=0.01) for s in range(100)]
    assert tri[50] == 1e-3 and tri[-1] < 2e-5
