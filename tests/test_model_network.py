"""The network honours the I/O contract for every variant and size, and its focus graph is separable."""

import json

import pytest

torch = pytest.importorskip("torch")

from ifrt.train.model import (  # noqa: E402
    CONTRACT_OUTPUTS,
    DeepMTND,
    ModelConfig,
    count_flops,
    load_model,
    model_config,
    save_model,
)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)


def test_hier_forward_returns_exactly_the_contract_outputs_with_contract_shapes():
    model = DeepMTND(model_config("tiny", "hier", blur_levels=5)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 96, 160))
    assert set(out) == set(CONTRACT_OUTPUTS)
    assert out["diagnosis_logits"].shape == (2, 4)
    assert out["blur_logits"].shape == (2, 5)
    assert out["quality"].shape == (2,)
    assert out["quality_map"].shape == (2, 1, 3, 5)
    assert out["certainty"].shape == (2, 1, 3, 5)
    assert out["deblurred"].shape == (2, 1, 96, 160)


def test_quality_and_certainty_lie_in_zero_one():
    model = DeepMTND(model_config("tiny", "flat")).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 1, 64, 64) * 4 - 1)
    for name in ("quality", "quality_map", "certainty"):
        assert float(out[name].min()) >= 0.0 and float(out[name].max()) <= 1.0, name


def test_untrained_deblur_decoder_starts_as_the_identity():
    model = DeepMTND(model_config("tiny", "hier")).eval()
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(image)["deblurred"], image)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_refinement_depth_and_width_shape_the_full_resolution_head_which_starts_as_the_identity(depth):
    model = DeepMTND(model_config("tiny", "hier", refine_width=12, refine_depth=depth)).eval()
    convs = [m for m in model.deblur.refine if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(5, 12)] * (depth > 1) + [(12, 12)] * (depth - 2) + \
        [(12 if depth > 1 else 5, 1)]
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(image)["deblurred"], image)


def test_quality_gate_passes_in_focus_tiles_through_and_restores_blurred_ones():
    model = DeepMTND(model_config("tiny", "hier", deblur_gate="quality")).eval()
    torch.nn.init.constant_(model.deblur.refine[-1].bias, 0.5)  # a trained head: a residual everywhere
    image = torch.rand(1, 1, 64, 64)
    f2, f4, f8 = model.encoder_low(image)
    quality = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # top-left tile in focus, the others blurred
    with torch.no_grad():
        out, _ = model.deblur(image, f2, f4, f8, {"quality_map": quality})
        plain = DeepMTND(model_config("tiny", "hier")).eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if k != "deblur.gate"})
        ungated = plain(image)["deblurred"]
    change = (out - image).abs()[0, 0]
    assert float(change[:8, :8].max()) < 0.5 * 0.06  # sigmoid(-3) = 0.047 of the residual in focus
    assert float(change[40:, 40:].min()) > 0.5 * 0.999  # sigmoid(18) of it where blurred
    assert not torch.equal(ungated, model(image)["deblurred"])
    with pytest.raises(ValueError, match="deblur_gate='soft'"):
        model_config("tiny", "hier", deblur_gate="soft")


def test_gated_decoder_refuses_to_run_without_the_quality_map():
    model = DeepMTND(model_config("tiny", "hier", deblur_gate="quality")).eval()
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad(), pytest.raises(ValueError, match="pass the IQA head's quality_map"):
        model.deblur(image, *model.encoder_low(image))


def test_class_prior_is_normalized_and_needs_one_positive_share_per_class():
    cfg = model_config("tiny", "hier", class_names=["a", "b"], class_prior=[3, 1])
    assert cfg.class_prior == [0.75, 0.25]
    assert model_config("tiny", "hier").class_prior is None  # equal shares
    for bad in ([1.0], [1.0, 0.0], [1.0, -1.0, 1.0]):
        with pytest.raises(ValueError, match="one positive share per class"):
            model_config("tiny", "hier", class_names=["a", "b"], class_prior=bad)


def test_default_refinement_keeps_the_tensor_names_of_earlier_checkpoints():
    names = {k for k in DeepMTND(model_config("s", "hier")).state_dict() if k.startswith("deblur.refine.")}
    assert names == {"deblur.refine.0.weight", "deblur.refine.0.bias", "deblur.refine.2.weight", "deblur.refine.2.bias"}
    with pytest.raises(ValueError, match="refine_depth=0"):
        model_config("s", "hier", refine_depth=0)


def test_single_task_variant_returns_only_diagnosis_logits():
    model = DeepMTND(model_config("tiny", "st", class_names=["a", "b", "c"])).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64))
    assert list(out) == ["diagnosis_logits"] and out["diagnosis_logits"].shape == (1, 3)


def test_with_tiles_adds_per_tile_blur_logits_for_training():
    model = DeepMTND(model_config("tiny", "hier", blur_levels=4)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 96), with_tiles=True)
    assert out["tile_blur_logits"].shape == (1, 4, 2, 3)


@pytest.mark.parametrize("height,width", [(100, 64), (64, 48)])
def test_size_not_multiple_of_32_is_rejected_with_the_fix(height, width):
    model = DeepMTND(model_config("tiny", "hier"))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 1, height, width))


def test_focus_model_shares_weights_and_matches_full_model_iqa_outputs():
    model = DeepMTND(model_config("tiny", "hier")).eval()
    focus = model.focus_model().eval()
    image = torch.rand(2, 1, 64, 128)
    with torch.no_grad():
        full, quick = model(image), focus(image)
    assert set(quick) == {"blur_logits", "quality", "quality_map", "certainty"}
    for name in quick:
        torch.testing.assert_close(quick[name], full[name])
    assert set(focus.state_dict()) <= set(model.state_dict())


def test_focus_model_costs_less_than_a_third_of_the_full_s_model():
    model = DeepMTND(model_config("s", "hier"))
    assert count_flops(model.focus_model(), 512, 512) < count_flops(model, 512, 512) / 3


def test_s_model_costs_at_most_3_gflops_at_512():
    # Measured 1.76 GFLOPs (hier), 1.50 (flat), 0.75 (st) at 512x512 with torch.utils.flop_counter.
    gflops = count_flops(DeepMTND(model_config("s", "hier")), 512, 512) / 1e9
    assert 1.0 < gflops <= 3.0


def test_bundled_default_model_stays_within_the_edge_budget():
    # Its wider deblurring refinement (12 x 3, quality gate), its deconvolution bank (without the in-focus filter)
    # and its blur-kind head bring it to 2.97 GFLOPs at 512x512.
    from ifrt.model_package import DEFAULT_MODEL_DIR

    model = load_model(DEFAULT_MODEL_DIR)
    assert model.cfg.size == "s"
    assert 2.0 < count_flops(model, 512, 512) / 1e9 <= 3.0


def test_m_model_is_larger_than_s():
    s = sum(p.numel() for p in DeepMTND(model_config("s", "hier")).parameters())
    m = sum(p.numel() for p in DeepMTND(model_config("m", "hier")).parameters())
    assert m > 3 * s


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path):
    model = DeepMTND(model_config("tiny", "hier", class_names=["x", "y"])).eval()
    save_model(model, tmp_path, {"note": "test"})
    assert (tmp_path / "model.safetensors").is_file()
    record = json.loads((tmp_path / "model.json").read_text())
    assert record["model"]["class_names"] == ["x", "y"] and record["note"] == "test"
    assert record["model"]["normalization"] == {"kind": "percentile", "p_low": 1.0, "p_high": 99.8, "clip": False}
    loaded = load_model(tmp_path)
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        for name, value in model(image).items():
            torch.testing.assert_close(loaded(image)[name], value)


def test_config_rejects_unknown_variant_and_size():
    with pytest.raises(ValueError, match="variant"):
        ModelConfig(variant="deep")
    with pytest.raises(ValueError, match="size"):
        model_config("xl")
