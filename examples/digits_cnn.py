"""Train a small A-Connect CNN on scikit-learn's digits and test it on simulated chips.

    python examples/digits_cnn.py [--sigma 0.5] [--epochs 15] [--chips 50]

Shows the library on its own: build a model from A-Connect layers, train it like any Keras
model, then put it on reproducible simulated chips with `aconnect.select_chip`.
"""

import argparse

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import aconnect
from aconnect import Mismatch


def build(mismatch: Mismatch) -> keras.Model:
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        aconnect.AConnectConv2D(16, 3, padding="same", activation="relu", mismatch=mismatch),
        aconnect.AConnectDepthwiseConv2D(3, padding="same", activation="relu", mismatch=mismatch),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        aconnect.AConnectDense(10, mismatch=mismatch),
    ])


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--chips", type=int, default=50)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)

    model = build(Mismatch(sigma=args.sigma))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)

    nominal = model.evaluate(x_test, y_test, verbose=0)[1]
    accuracies = []
    for chip in range(args.chips):
        aconnect.select_chip(model, seed=chip)
        logits = model.predict(x_test, verbose=0)
        accuracies.append(float(np.mean(logits.argmax(-1) == y_test)))
    aconnect.clear_chip(model)
    summary = {"nominal": nominal, "chip_median": float(np.median(accuracies)),
               "chip_min": float(np.min(accuracies))}
    print(f"nominal accuracy {nominal:.3f}; over {args.chips} chips at sigma {args.sigma}: "
          f"median {summary['chip_median']:.3f}, worst {summary['chip_min']:.3f}")
    return summary


if __name__ == "__main__":
    main()
