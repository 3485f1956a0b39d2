"""The demo's second part: a small CNN learns scikit-learn's handwritten digits.

Everything runs on npconv: Conv2d, ReLU, MaxPool2d, Flatten, Linear, CrossEntropyLoss and
Adam, with every gradient computed by the modules' backward.  The 1,797 8x8 digits ship
with scikit-learn (no download); 20 % are held out for the test accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import nn, optim
from .random import manual_seed


@dataclass
class TrainingResult:
    """What :func:`run` reports: accuracy on the held-out digits, time, and the picture's path."""

    test_accuracy: float
    seconds: float
    epochs: int
    misclassified: int
    picture: Path | None


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); images (N, 1, 8, 8) float32 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.2,
                                                        random_state=seed, stratify=digits.target)
    return x_train, y_train, x_test, y_test


def build_model() -> nn.Sequential:
    """(N, 1, 8, 8) -> 16 x 8 x 8 -> pool 4 x 4 -> 32 x 4 x 4 -> pool 2 x 2 -> 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


def predict(model: nn.Sequential, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """The predicted digit of each image (the largest logit), in evaluation mode."""
    model.eval()
    return np.concatenate([model(images[i:i + batch]).argmax(axis=1) for i in range(0, len(images), batch)])


def train(epochs: int = 30, batch: int = 32, lr: float = 3e-3, seed: int = 0,
          progress: bool = True) -> tuple[nn.Sequential, tuple[np.ndarray, np.ndarray]]:
    """Train with Adam on mini-batches; returns (model, (x_test, y_test))."""
    from tqdm import tqdm

    manual_seed(seed)
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    model, criterion = build_model(), nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    order_rng = np.random.default_rng(seed)
    steps = epochs * -(-len(x_train) // batch)
    with tqdm(total=steps, desc="training the digits CNN", unit="batch", disable=not progress,
              mininterval=0.5) as bar:
        for epoch in range(epochs):
            model.train()
            order = order_rng.permutation(len(x_train))
            for start in range(0, len(order), batch):
                chosen = order[start:start + batch]
                loss = criterion(model(x_train[chosen]), y_train[chosen])
                optimizer.zero_grad()
                model.backward(criterion.backward())
                optimizer.step()
                bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss):.3f}", refresh=False)
    return model, (x_test, y_test)


def save_picture(model: nn.Sequential, x_test: np.ndarray, y_test: np.ndarray, predicted: np.ndarray,
                 path: Path) -> Path:
    """First-layer filters on top, misclassified test digits (true -> predicted) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    filters = np.asarray(model[0].weight)[:, 0]  # (16, 3, 3)
    wrong = np.flatnonzero(predicted != y_test)[:8]
    fig, axes = plt.subplots(2, 16, figsize=(16, 2.6))
    for i, ax in enumerate(axes[0]):
        ax.imshow(filters[i], cmap="RdBu_r", vmin=-np.abs(filters).max(), vmax=np.abs(filters).max())
        ax.set_title(f"filter {i}", fontsize=7)
    for ax, index in zip(axes[1], wrong):
        ax.imshow(x_test[index, 0], cmap="gray_r")
        ax.set_title(f"{y_test[index]} -> {predicted[index]}", fontsize=8, color="crimson")
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    fig.suptitle("npconv digits CNN: learned 3x3 filters of the first Conv2d (top); "
                 "misclassified test digits, true -> predicted (bottom)", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run(epochs: int = 30, picture: Path | None = Path("digits_cnn.png"), progress: bool = True) -> TrainingResult:
    """Train the digits CNN for ``epochs``, measure its test accuracy, draw ``picture`` (if any)."""
    start = time.perf_counter()
    model, (x_test, y_test) = train(epochs=epochs, progress=progress)
    seconds = time.perf_counter() - start
    predicted = predict(model, x_test)
    accuracy = float((predicted == y_test).mean())
    saved = save_picture(model, x_test, y_test, predicted, picture) if picture else None
    return TrainingResult(accuracy, seconds, epochs, int((predicted != y_test).sum()), saved)
