"""Evaluation metrics in numpy/scipy, each a small function with its definition in the docstring."""

from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(pred == target)) if len(target) else float("nan")


def confusion_matrix(pred: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (target, pred), 1)
    return m


def macro_f1(confusion: np.ndarray) -> float:
    """Mean over classes of 2 TP / (2 TP + FP + FN); classes absent from both truth and prediction skipped."""
    tp = np.diag(confusion).astype(float)
    fp = confusion.sum(0) - tp
    fn = confusion.sum(1) - tp
    denom = 2 * tp + fp + fn
    present = denom > 0
    return float(np.mean(2 * tp[present] / denom[present])) if present.any() else float("nan")


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties counting 1/2
    (the Mann-Whitney U statistic over the product of class sizes)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def expected_calibration_error(probs: np.ndarray, target: np.ndarray, bins: int = 15) -> tuple[float, list[dict]]:
    """ECE = sum over confidence bins of (bin share) * |accuracy - mean confidence|; also the bins."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == target
    edges = np.linspace(0, 1, bins + 1)
    ece, table = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
            ece += inside.mean() * abs(acc - conf)
            table.append({"low": float(lo), "high": float(hi), "count": int(inside.sum()), "accuracy": acc,
                          "confidence": conf})
    return float(ece), table


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit_temperature(logits: np.ndarray, target: np.ndarray) -> float:
    """Temperature T minimizing the negative log-likelihood of softmax(logits / T) (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = softmax(logits, float(np.exp(log_t)))
        return float(-np.mean(np.log(p[np.arange(len(target)), target] + 1e-12)))

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def srocc(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def plcc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson linear correlation."""
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 else float("nan")


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((pred.astype(np.float64) - target) ** 2))
    return float(10 * np.log10(data_range**2 / max(mse, 1e-12)))


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004): Gaussian window sigma 1.5, K1 0.01, K2 0.03."""
    import cv2

    x, y = pred.astype(np.float64), target.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a):
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def variance_of_laplacian(image: np.ndarray) -> float:
    """The classical focus measure: variance of the 3x3 Laplacian response (higher = sharper)."""
    import cv2

    return float(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F, ksize=1).var())


def pairwise_order_accuracy(levels: np.ndarray, scores: np.ndarray) -> float:
    """Share of pairs with different blur levels whose score is strictly higher for the sharper one."""
    i, j = np.triu_indices(len(levels), 1)
    differ = levels[i] != levels[j]
    sharper_first = levels[i] < levels[j]
    right = np.where(sharper_first, scores[i] > scores[j], scores[j] > scores[i])
    return float(right[differ].mean()) if differ.any() else float("nan")
