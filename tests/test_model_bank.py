"""The deconvolution bank: a linear restoration at stride 2, steered per tile by the IQA head."""

import pytest

torch = pytest.importorskip("torch")

from torch.nn import functional as F  # noqa: E402

from ifrt.train.model import DeepMTND, model_config  # noqa: E402
from ifrt.train.model.bank_init import fit_deconvolution_bank, windows  # noqa: E402
from ifrt.train.model.io import count_flops  # noqa: E402


def bank_model(**overrides) -> DeepMTND:
    torch.manual_seed(0)
    return DeepMTND(model_config("tiny", "hier", deblur_bank=True, deblur_gate="quality", refine_width=6,
                                 refine_depth=3, **overrides)).eval()


def one_hot_tiles(level: int, levels: int, tiles: tuple[int, int]) -> torch.Tensor:
    logits = torch.full((1, levels, *tiles), -60.0)
    logits[:, level] = 60.0
    return logits


def test_a_bank_added_to_a_trained_decoder_leaves_its_output_unchanged_until_it_trains():
    plain = DeepMTND(model_config("tiny", "hier", deblur_gate="quality", refine_width=6, refine_depth=3)).eval()
    torch.nn.init.normal_(plain.deblur.refine[-1].weight)  # as trained: the refinement's output is not zero
    banked = bank_model()
    missing = banked.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted({k.rsplit(".", 1)[0] for k in missing}) == ["deblur.bank.filters", "deblur.bank.mix",
                                                               "deblur.refine_linear"]
    image = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        assert torch.equal(banked(image)["deblurred"], plain(image)["deblurred"])
    banked.deblur.refine_linear.weight.data.fill_(0.1)
    with torch.no_grad():
        assert not torch.allclose(banked(image)["deblurred"], plain(image)["deblurred"])


def test_the_block_mean_filter_restores_a_linear_ramp_exactly_away_from_the_border():
    # Each stride-2 sample is the mean of a 2x2 block, located at the block's centre; bilinear upsampling
    # of samples of a linear function is that function, so any misplacement by half a pixel would show.
    bank = bank_model().deblur.bank
    fit_deconvolution_bank(bank, [])  # no images: every level keeps the block mean
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(96.0), indexing="ij")
    ramp = (0.01 * y + 0.003 * x)[None, None]
    with torch.no_grad():
        linear = bank(ramp, torch.zeros(1, 16, 2, 3), one_hot_tiles(2, 5, (2, 3)))
    assert linear.shape == ramp.shape
    torch.testing.assert_close(linear[..., 2:-2, 2:-2], ramp[..., 2:-2, 2:-2], atol=1e-5, rtol=0)


def test_least_squares_start_recovers_each_levels_filter_and_the_mixing_picks_the_tiles_level():
    bank = bank_model(deblur_bank_span=6).deblur.bank
    torch.manual_seed(1)
    truth = torch.randn(5, 1, 6, 6)
    samples = []
    for i in range(10):
        level = i % 5
        image = torch.rand(1, 64, 64)
        block_means = F.conv2d(image[None], truth[level:level + 1], stride=2, padding=2)
        # A reference whose 2x2 block means are exactly the filter's output.
        sharp = F.interpolate(block_means, scale_factor=2, mode="nearest")[0]
        samples.append({"image": image, "sharp": sharp, "has_sharp": torch.tensor(True),
                        "blur_level": torch.tensor(level)})
    samples.append({**samples[0], "has_sharp": torch.tensor(False), "blur_level": torch.tensor(4)})
    assert fit_deconvolution_bank(bank, samples) == {0: 2, 1: 2, 2: 2, 3: 2, 4: 2}
    torch.testing.assert_close(bank.filters.weight, truth, atol=2e-3, rtol=0)
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        linear = bank(image, torch.randn(1, 16, 2, 2), one_hot_tiles(3, 5, (2, 2)))
    expected = F.interpolate(F.conv2d(image, bank.filters.weight[3:4], stride=2, padding=2), size=(64, 64),
                             mode="bilinear", align_corners=False)
    torch.testing.assert_close(linear, expected, atol=1e-4, rtol=0)


def test_windows_are_what_the_filters_see():
    image = torch.rand(2, 1, 32, 64)
    filters = torch.nn.Conv2d(1, 1, 8, stride=2, padding=3, bias=False)
    expected = F.conv2d(image, filters.weight, stride=2, padding=3).reshape(-1)
    torch.testing.assert_close(windows(image, filters) @ filters.weight.reshape(-1), expected, atol=1e-5, rtol=0)


def test_the_bank_asks_for_the_iqa_outputs_and_an_even_span():
    model = bank_model()
    image = torch.rand(1, 1, 64, 64)
    f2, f4, f8 = model.encoder_low(image)
    with pytest.raises(ValueError, match="deblur_bank"):
        model.deblur(image, f2, f4, f8)  # without the IQA head's outputs
    with pytest.raises(ValueError, match="deblur_bank_span=25"):
        model_config("tiny", "hier", deblur_bank=True, deblur_bank_span=25)


def test_an_s_model_with_the_bank_and_the_default_refinement_stays_within_3_gflops():
    # Measured 2.99 GFLOPs at 512x512: the bank's five 24x24 filters at stride 2 add 0.38, its input to the
    # refinement 0.06 to the 2.55 of the bankless default.
    model = DeepMTND(model_config("s", "hier", deblur_bank=True, deblur_gate="quality", refine_width=12,
                                  refine_depth=3))
    assert 2.9 < count_flops(model, 512, 512) / 1e9 <= 3.0


def test_weights_of_a_model_without_the_bank_are_refused_by_name(tmp_path):
    from ifrt.train.model import load_model, save_model

    plain = DeepMTND(model_config("tiny", "hier", deblur_gate="quality", refine_width=6, refine_depth=3))
    save_model(plain.eval(), tmp_path / "plain")
    save_model(bank_model(), tmp_path / "banked")
    (tmp_path / "plain" / "model.safetensors").replace(tmp_path / "banked" / "model.safetensors")
    with pytest.raises(ValueError, match=r"banked/model.safetensors: the tensors do not fit the network .*"
                                         r"4 missing \(deblur.bank, deblur.refine_linear\).*copy them together"):
        load_model(tmp_path / "banked")
