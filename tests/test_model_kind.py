"""The blur-kind head (defocus or Gaussian-like, from the frame's tile spectrum) and what it steers."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ifrt.normalize import apply_range, percentile_range  # noqa: E402
from ifrt.train.data.degrade import degrade  # noqa: E402
from ifrt.train.data.synth import render_glomerulus  # noqa: E402
from ifrt.train.dataset import BLUR_KIND_CLASS, blur_kind_index  # noqa: E402
from ifrt.train.losses import LossConfig, MultiTaskLoss  # noqa: E402
from ifrt.train.model import DeepMTND, model_config  # noqa: E402
from ifrt.train.model.io import count_flops  # noqa: E402
from ifrt.train.model.kind_init import fit_blur_kind_head  # noqa: E402
from ifrt.train.model.network import BLUR_KINDS, BlurKindHead, spectral_kernels  # noqa: E402


def kind_model(**overrides) -> DeepMTND:
    torch.manual_seed(0)
    return DeepMTND(model_config("tiny", "hier", deblur_bank=True, deblur_gate="quality", refine_width=6,
                                 refine_depth=3, deblur_kind=True, **overrides)).eval()


def test_spectral_kernels_pick_out_their_own_frequency_and_ignore_brightness():
    kernels = spectral_kernels(32, 15, 4)
    assert kernels.shape == (15 * 4 * 2, 1, 32, 32)
    torch.testing.assert_close(kernels.sum(dim=(1, 2, 3)), torch.zeros(120), atol=1e-6, rtol=0)
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    for radius, orientation in ((3, 0), (9, 2), (15, 1)):
        angle = math.pi * orientation / 4
        wave = torch.cos(2 * math.pi * radius * (math.sin(angle) * y + math.cos(angle) * x) / 32 + 0.7)
        response = torch.nn.functional.conv2d((0.5 + 0.2 * wave)[None, None], kernels, stride=32).abs().reshape(15, 4, 2)
        amplitude = response.sum(-1)
        assert amplitude.argmax() == (radius - 1) * 4 + orientation
        # A constant added to the tile does not reach any frequency.
        brighter = torch.nn.functional.conv2d((0.9 + 0.2 * wave)[None, None], kernels, stride=32).abs().reshape(15, 4, 2)
        torch.testing.assert_close(brighter, response, atol=1e-5, rtol=0)


def test_the_kind_features_do_not_depend_on_contrast_and_stay_within_float16():
    head = BlurKindHead()
    image = torch.rand(2, 1, 96, 64)
    features = head.spectrum(image)
    assert features.shape == (2, BlurKindHead.RADII - 1)
    torch.testing.assert_close(head.spectrum(3 * image + 0.2), features, atol=1e-4, rtol=0)
    responses = torch.nn.functional.conv2d(torch.ones(1, 1, 32, 32) * 4, head.kernels.abs(), stride=32)
    assert float(responses.max()) < 1e3  # even a tile of 4s against |kernel| stays far below float16's 65504


def frames_of_kind(kind: str, count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        sharp = render_glomerulus(rng, "IgAN", "IgA", 128)
        d = degrade(sharp, rng, level=2 + i % 3, kind=kind)
        lo, hi = percentile_range(d.image)
        out.append({"image": torch.from_numpy(apply_range(d.image, lo, hi))[None],
                    "blur_kind": torch.tensor(blur_kind_index(d.kind, d.blur_level))})
    return out


def test_the_kind_head_starts_fitted_and_tells_defocus_from_gaussian_blur_on_new_frames():
    head = BlurKindHead()
    train = frames_of_kind("gaussian", 24, 1) + frames_of_kind("defocus", 24, 2)
    unknown = {**train[0], "blur_kind": torch.tensor(-1)}  # in focus or unlabelled: not used
    fit = fit_blur_kind_head(head, train + [unknown])
    assert fit["gaussian"] == 24 and fit["defocus"] == 24 and fit["accuracy"] > 0.9
    test = frames_of_kind("gaussian", 12, 3) + frames_of_kind("defocus", 12, 4)
    with torch.no_grad():
        predicted = head(torch.stack([s["image"] for s in test])).argmax(1)
    truth = torch.stack([s["blur_kind"] for s in test])
    assert float((predicted == truth).float().mean()) >= 0.8


def test_a_frozen_kind_head_still_starts_fitted_and_stays_frozen():
    head = BlurKindHead()
    for p in head.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # as a caller's context might be
        fit = fit_blur_kind_head(head, frames_of_kind("gaussian", 6, 1) + frames_of_kind("defocus", 6, 2))
    assert fit["accuracy"] > 0.8
    assert all(not p.requires_grad and p.grad is None for p in head.parameters())


def test_the_kind_head_refuses_frames_of_one_kind_only():
    with pytest.raises(ValueError, match="every kind.*'defocus': 0"):
        fit_blur_kind_head(BlurKindHead(), frames_of_kind("gaussian", 3, 1))


def test_kind_targets_group_spatially_varying_blur_with_gaussian_and_mask_in_focus_frames():
    assert [BLUR_KINDS[BLUR_KIND_CLASS[k]] for k in ("gaussian", "spatial", "defocus")] == \
        ["gaussian", "gaussian", "defocus"]
    assert blur_kind_index("defocus", 2) == 1 and blur_kind_index("spatial", 1) == 0
    assert blur_kind_index("defocus", 0) == -1  # in focus: no kind
    assert blur_kind_index("defocus", -1) == -1 and blur_kind_index(None, 3) == -1
    assert blur_kind_index("astigmatism", 3) == -1


def test_a_kind_head_added_to_a_trained_model_leaves_its_output_unchanged_until_it_trains():
    plain = DeepMTND(model_config("tiny", "hier", deblur_bank=True, deblur_gate="quality", refine_width=6,
                                  refine_depth=3)).eval()
    torch.nn.init.normal_(plain.deblur.refine[-1].weight)  # as trained: the refinement's output is not zero
    steered = kind_model()
    missing = steered.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted({k.split(".")[0] + "." + k.split(".")[1] for k in missing}) == \
        ["blur_kind.feature_mean", "blur_kind.feature_std", "blur_kind.mlp", "deblur.bank", "deblur.kind_film"]
    image = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        assert torch.equal(steered(image)["deblurred"], plain(image)["deblurred"])
        steered.deblur.kind_film[1].to_gamma_beta.weight.fill_(0.3)
        assert not torch.allclose(steered(image)["deblurred"], plain(image)["deblurred"])


def test_the_kind_modulates_each_frame_of_a_batch_by_its_own_probabilities():
    model = kind_model()
    with torch.no_grad():
        for film in model.deblur.kind_film:
            torch.nn.init.normal_(film.to_gamma_beta.weight)
        torch.nn.init.normal_(model.deblur.bank.mix_kind.weight)
        torch.nn.init.normal_(model.deblur.refine[-1].weight)
        a, b = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
        together = model(torch.cat([a, b]))["deblurred"]
        torch.testing.assert_close(together[1:], model(b)["deblurred"], atol=1e-5, rtol=0)
        # The same image with the kind head's verdict reversed restores differently.
        logits = model.forward_with_tiles(a)["blur_kind_logits"]
        model.blur_kind.mlp[-1].bias.add_(torch.tensor([-1.0, 1.0]) * 20 * torch.sign(logits[0, 0] - logits[0, 1]))
        assert not torch.allclose(model(a)["deblurred"], together[:1])


def test_the_kind_is_a_training_output_only_and_its_loss_masks_unknown_kinds():
    model = kind_model()
    image = torch.rand(3, 1, 64, 64)
    assert "blur_kind_logits" not in model(image)
    out = model.forward_with_tiles(image)
    assert out["blur_kind_logits"].shape == (3, 2)
    criterion = MultiTaskLoss(LossConfig(weights={"diagnosis": 0, "quality": 0, "deblur": 0}), blur_levels=5)
    batch = {"diagnosis": torch.tensor([-1, -1, -1]), "blur_level": torch.tensor([-1, -1, -1]),
             "blur_map": torch.full((3, 2, 2), float("nan")), "sharp": image, "has_sharp": torch.tensor([False] * 3)}
    unknown = criterion.task_losses(out, {**batch, "blur_kind": torch.tensor([-1, -1, -1])})["blur"]
    assert float(unknown.detach()) == 0.0
    known = criterion.task_losses(out, {**batch, "blur_kind": torch.tensor([1, -1, 0])})["blur"]
    expected = 0.5 * torch.nn.functional.cross_entropy(out["blur_kind_logits"][[0, 2]], torch.tensor([1, 0]))
    torch.testing.assert_close(known, expected)


def test_a_bank_without_the_in_focus_filter_keeps_it_but_mixes_the_blurred_levels_only():
    bank = kind_model(deblur_bank_in_focus=False, deblur_bank_span=6).deblur.bank
    assert bank.filters.weight.shape == (5, 1, 6, 6)  # weights move between banks with and without it
    torch.manual_seed(1)
    truth = torch.randn(5, 1, 6, 6)
    with torch.no_grad():
        bank.filters.weight.copy_(truth)
        bank.mix.weight.zero_()
        bank.mix.weight[:, -5:, 0, 0] = torch.eye(5)  # the level lookup
        bank.mix.bias.zero_()
    image = torch.rand(1, 1, 64, 64)

    def tiles_at(level):
        tiles = torch.full((1, 5, 2, 2), -60.0)
        tiles[:, level] = 60.0
        return tiles

    with torch.no_grad():
        linear = bank(image, torch.randn(1, 16, 2, 2), tiles_at(3), torch.tensor([[0.5, 0.5]]))
        in_focus = bank(image, torch.randn(1, 16, 2, 2), tiles_at(0), torch.tensor([[0.5, 0.5]]))
        expected = torch.nn.functional.interpolate(
            torch.nn.functional.conv2d(image, truth[3:4], stride=2, padding=2), size=(64, 64), mode="bilinear",
            align_corners=False)
    torch.testing.assert_close(linear, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(in_focus, torch.zeros_like(in_focus), atol=1e-6, rtol=0)  # level 0: no filter


def test_kind_options_are_checked():
    with pytest.raises(ValueError, match="deblur_bank_in_focus=false.*deblur_bank=true"):
        model_config("tiny", "hier", deblur_bank_in_focus=False)
    with pytest.raises(ValueError, match="deblur_kind=true.*single-task"):
        model_config("tiny", "st", deblur_kind=True)
    model = kind_model()
    image = torch.rand(1, 1, 64, 64)
    f2, f4, f8 = model.encoder_low(image)
    with pytest.raises(ValueError, match="deblur_kind=true"):
        model.deblur(image, f2, f4, f8, model.iqa(f8))  # without the kind probabilities


def test_an_s_model_with_the_kind_head_stays_within_3_gflops():
    # Measured 2.97 GFLOPs at 512x512: the spectrum's 120 kernels at stride 32 add 0.063 GFLOPs; leaving the
    # bank's in-focus filter out saves 0.076.
    model = DeepMTND(model_config("s", "hier", deblur_bank=True, deblur_gate="quality", refine_width=12,
                                  refine_depth=3, deblur_bank_in_focus=False, deblur_kind=True))
    assert 2.9 < count_flops(model, 512, 512) / 1e9 <= 3.0
