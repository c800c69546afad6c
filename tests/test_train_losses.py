"""Task losses: unknown targets are masked out, never imputed."""

import math

import pytest

torch = pytest.importorskip("torch")

from ifrt.train.losses import LossConfig, MultiTaskLoss, charbonnier, log_squared_error, masked_mean, psnr  # noqa: E402


def _batch(n=2, levels=5, size=64):
    return {"diagnosis": torch.tensor([1, -1][:n]), "blur_level": torch.tensor([2, -1][:n]),
            "blur_map": torch.tensor([[[2.0, 2.0], [2.0, 2.0]], [[math.nan] * 2] * 2][:n]),
            "sharp": torch.rand(n, 1, size, size), "has_sharp": torch.tensor([True, False][:n])}


def _outputs(n=2, levels=5, size=64, classes=4):
    return {"diagnosis_logits": torch.randn(n, classes, requires_grad=True),
            "blur_logits": torch.randn(n, levels, requires_grad=True),
            "tile_blur_logits": torch.randn(n, levels, 2, 2, requires_grad=True),
            "quality": torch.rand(n, requires_grad=True), "quality_map": torch.rand(n, 1, 2, 2, requires_grad=True),
            "deblurred": torch.rand(n, 1, size, size, requires_grad=True)}


def test_masked_mean_ignores_masked_samples():
    assert float(masked_mean(torch.tensor([1.0, 100.0]), torch.tensor([True, False]))) == 1.0


def test_masked_mean_of_nothing_known_is_zero():
    assert float(masked_mean(torch.tensor([5.0]), torch.tensor([False]))) == 0.0


def test_sample_with_unknown_targets_gets_no_gradient():
    criterion = MultiTaskLoss(LossConfig(), blur_levels=5)
    out = _outputs()
    loss, _ = criterion(out, _batch())
    loss.backward()
    for name in ("diagnosis_logits", "blur_logits", "quality", "deblurred"):
        assert float(out[name].grad[1].abs().sum()) == 0.0, name
        assert float(out[name].grad[0].abs().sum()) > 0.0, name
    assert float(out["tile_blur_logits"].grad[1].abs().sum()) == 0.0


def test_loss_does_not_depend_on_values_behind_a_mask():
    criterion = MultiTaskLoss(LossConfig(), blur_levels=5)
    out, batch = _outputs(), _batch()
    first, _ = criterion(out, batch)
    batch["sharp"][1] = 1000.0  # an unknown reference: its content must not matter
    second, _ = criterion(out, batch)
    assert first.item() == second.item()


def test_single_task_criterion_logs_only_the_diagnosis_loss():
    criterion = MultiTaskLoss(LossConfig(), blur_levels=5, tasks=("diagnosis",))
    _, logged = criterion(_outputs(), _batch())
    assert set(logged) == {"loss", "loss_diagnosis"}


def test_task_weights_left_out_keep_their_defaults_and_unknown_or_negative_ones_are_refused():
    assert LossConfig(weights={"deblur": 0.2}).weights == {"diagnosis": 1.0, "blur": 0.5, "quality": 1.0, "deblur": 0.2}
    assert MultiTaskLoss(LossConfig(weights={"blur": 0, "quality": 0}), 5).tasks == ("diagnosis", "deblur")
    with pytest.raises(ValueError, match="unknown tasks \\['debluring'\\]"):
        LossConfig(weights={"debluring": 1.0})
    with pytest.raises(ValueError, match="must be a number >= 0"):
        LossConfig(weights={"blur": -1.0})


def test_learned_weights_start_equal_to_fixed_unit_weights():
    weights = {"diagnosis": 1.0, "blur": 1.0, "quality": 1.0, "deblur": 1.0}
    out, batch = _outputs(), _batch()
    fixed, _ = MultiTaskLoss(LossConfig(weights=weights), 5)(out, batch)
    learned, _ = MultiTaskLoss(LossConfig(weights=weights, learned_weights=True), 5)(out, batch)
    assert fixed.item() == pytest.approx(learned.item())


def _undiagnosed(batch):
    return {**batch, "diagnosis": torch.full_like(batch["diagnosis"], -1)}


@pytest.mark.parametrize("learned", [False, True])
def test_a_batch_without_a_known_diagnosis_gives_the_diagnosis_no_gradient(learned):
    criterion = MultiTaskLoss(LossConfig(learned_weights=learned), blur_levels=5)
    out = _outputs()
    loss, logged = criterion(out, _undiagnosed(_batch()))
    loss.backward()
    assert logged["loss_diagnosis"] == 0.0
    assert float(out["diagnosis_logits"].grad.abs().sum()) == 0.0
    if learned:  # the task's uncertainty is not taught that an unknown diagnosis is a perfect one
        assert float(criterion.log_vars["diagnosis"].grad) == 0.0
        assert float(criterion.log_vars["blur"].grad) != 0.0  # a known task's uncertainty still learns


def test_learned_weights_of_tasks_unknown_in_the_whole_batch_get_no_gradient():
    criterion = MultiTaskLoss(LossConfig(learned_weights=True), blur_levels=5)
    batch = {**_undiagnosed(_batch()), "blur_level": torch.tensor([-1, -1]), "blur_map": torch.full((2, 2, 2), math.nan),
             "has_sharp": torch.tensor([False, False])}
    loss, _ = criterion(_outputs(), batch)
    loss.backward()
    assert loss.item() == 0.0
    assert {task: float(s.grad) for task, s in criterion.log_vars.items()} == {
        "diagnosis": 0.0, "blur": 0.0, "quality": 0.0, "deblur": 0.0}


def test_charbonnier_of_identical_images_is_epsilon():
    x = torch.rand(1, 1, 8, 8)
    assert float(charbonnier(x, x, eps=1e-3)[0]) == pytest.approx(1e-3)


def test_psnr_of_uniform_error_of_a_tenth_is_20_db():
    x = torch.zeros(1, 1, 8, 8)
    assert float(psnr(x + 0.1, x)[0]) == pytest.approx(20.0, abs=1e-4)


@pytest.mark.parametrize("pixel, expected", [("charbonnier", math.sqrt(0.3 ** 2 + 1e-6)), ("mse", 0.09),
                                             ("log_mse", 10 * math.log10(0.09 + 1e-5))])
def test_deblurring_pixel_term_is_charbonnier_squared_or_log_squared_error_on_the_known_reference(pixel, expected):
    out, batch = _outputs(), _batch()
    out["deblurred"] = batch["sharp"] + 0.3  # an error of 0.3 everywhere: FFT term only at zero frequency
    criterion = MultiTaskLoss(LossConfig(deblur_pixel=pixel, frequency_weight=0.0), 5)
    assert criterion.task_losses(out, batch)["deblur"].item() == pytest.approx(expected, rel=1e-5)


def test_log_squared_error_is_minus_the_psnr_and_weighs_a_db_the_same_at_every_error_size():
    target = torch.zeros(2, 1, 8, 8)
    pred = (target + torch.tensor([0.01, 0.3]).view(2, 1, 1, 1)).requires_grad_()
    loss = log_squared_error(pred, target, floor=0.0)
    assert loss.detach().tolist() == pytest.approx((-psnr(pred.detach(), target)).tolist(), rel=1e-6)
    # Halving either image's error gains the same 6.02 dB, so each image's gradient is inversely
    # proportional to its error: 30x smaller error, 30x larger pull.
    loss.sum().backward()
    small, large = pred.grad[0].abs().mean().item(), pred.grad[1].abs().mean().item()
    assert small / large == pytest.approx(30.0, rel=1e-4)
    assert float(log_squared_error(target, target)[0]) == pytest.approx(-50.0)  # a perfect image stops at the floor


def test_unknown_deblurring_pixel_term_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="deblur_pixel='l2'.*charbonnier \\| mse \\| log_mse"):
        MultiTaskLoss(LossConfig(deblur_pixel="l2"), 5)


def test_each_logged_loss_weighs_as_many_images_as_know_its_target():
    # Image 0 knows every target, image 1 none: each task's loss is a mean over one image, the total over two.
    batch = {**_batch(), "image": torch.rand(2, 1, 64, 64)}
    assert MultiTaskLoss.logged_weights(batch) == {"loss": 2, "loss_diagnosis": 1, "loss_blur": 1, "loss_quality": 1,
                                                   "loss_deblur": 1}
    batch["blur_map"][1, 0, 0] = 3.0  # a tile known: the image counts for the tile terms of blur and quality
    weights = MultiTaskLoss.logged_weights(batch)
    assert (weights["loss_blur"], weights["loss_quality"], weights["loss_diagnosis"]) == (2, 2, 1)


def test_validation_losses_are_means_over_the_images_that_know_the_target():
    # Two validation batches, the second without a known diagnosis: val_loss_diagnosis is the first batch's
    # loss, not half of it (a batch knowing nothing used to count as a loss of 0).
    from ifrt.train.trainer import validate

    class Fixed(torch.nn.Module):
        def forward_with_tiles(self, image):
            return {k: v.detach() for k, v in _outputs(n=image.shape[0]).items()}

    torch.manual_seed(0)
    known = {**_batch(), "image": torch.rand(2, 1, 64, 64), "diagnosis": torch.tensor([1, 2])}
    unknown = {**_batch(), "image": torch.rand(2, 1, 64, 64), "diagnosis": torch.tensor([-1, -1])}
    criterion = MultiTaskLoss(LossConfig(), blur_levels=5)
    torch.manual_seed(1)
    alone = validate(Fixed(), [known], criterion, torch.device("cpu"))
    torch.manual_seed(1)
    both = validate(Fixed(), [known, unknown], criterion, torch.device("cpu"))
    assert both["val_loss_diagnosis"] == pytest.approx(alone["val_loss_diagnosis"], rel=1e-6)
    torch.manual_seed(1)
    assert "val_loss_diagnosis" not in validate(Fixed(), [unknown], criterion, torch.device("cpu"))
