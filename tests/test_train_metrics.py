"""Evaluation metrics against hand-computed values."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from ifrt.train import metrics as M  # noqa: E402


def test_auc_of_perfectly_separated_scores_is_one_and_of_reversed_is_zero():
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    positive = np.array([False, False, True, True])
    assert M.roc_auc(scores, positive) == 1.0
    assert M.roc_auc(-scores, positive) == 0.0


def test_auc_counts_ties_as_half():
    assert M.roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5


def test_macro_f1_averages_per_class_f1():
    # class 0: tp 2, fp 1, fn 0 -> 0.8; class 1: tp 1, fp 0, fn 1 -> 2/3
    confusion = np.array([[2, 0], [1, 1]])
    assert M.macro_f1(confusion) == pytest.approx((0.8 + 2 / 3) / 2)


def test_confusion_matrix_rows_are_true_classes():
    m = M.confusion_matrix(np.array([1, 1, 0]), np.array([0, 1, 0]), 2)
    assert m.tolist() == [[1, 1], [0, 1]]


def test_ece_of_confident_correct_predictions_is_zero_and_of_confident_wrong_is_one():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert M.expected_calibration_error(probs, np.array([0, 1]))[0] == pytest.approx(0.0)
    assert M.expected_calibration_error(probs, np.array([1, 0]))[0] == pytest.approx(1.0)


def test_temperature_fit_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 4))
    p = M.softmax(logits, 2.0)
    target = np.array([rng.choice(4, p=row) for row in p])
    assert M.fit_temperature(logits, target) == pytest.approx(2.0, rel=0.15)


def test_srocc_of_a_monotone_transform_is_one():
    x = np.arange(10.0)
    assert M.srocc(x, np.exp(x)) == pytest.approx(1.0)


def test_psnr_of_error_0_1_is_20_db_and_ssim_of_identical_images_is_one():
    x = np.random.default_rng(0).random((32, 32))
    assert M.psnr(x + 0.1, x) == pytest.approx(20.0)
    assert M.ssim(x, x) == pytest.approx(1.0)


def test_variance_of_laplacian_drops_with_blur():
    import cv2

    x = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    assert M.variance_of_laplacian(cv2.GaussianBlur(x, (0, 0), 2)) < M.variance_of_laplacian(x) / 10


def test_pairwise_order_accuracy_counts_correctly_ordered_pairs():
    levels = np.array([0, 1, 2])
    assert M.pairwise_order_accuracy(levels, np.array([3.0, 2.0, 1.0])) == 1.0
    assert M.pairwise_order_accuracy(levels, np.array([3.0, 1.0, 2.0])) == pytest.approx(2 / 3)
