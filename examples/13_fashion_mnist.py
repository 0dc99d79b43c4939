"""The 784-64-10 MLP on real 28x28 images: Fashion-MNIST, beside scikit-learn's MLPClassifier.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) has MNIST's format and sizes (60,000 training
and 10,000 test images, 10 classes) but shows clothing, which is harder: the published
scikit-learn baselines are about 0.87-0.88 test accuracy for MLPClassifier and 0.84 for
logistic regression. The images come from Debian's package (sudo apt-get install
dataset-fashion-mnist); --data PATH runs the same script on any folder of MNIST-format IDX
files instead, for example the original MNIST digits if you have them.

What runs, on one split for both libraries (the last 20% of the training images are the
validation set, as in the documents' validation_split=0.2):

* tinymeta: the documents' network, Linear(784, 64) -> ReLU -> Linear(64, 10), trained
  with tinymeta.train.fit on the cross-entropy of the logits. The optimiser is Adam with
  its default step 1e-3, the documents' choice: it needs no learning-rate search on this
  problem, where SGD with momentum would need one (its good step depends on the pixel
  scale and the batch size), so both libraries can run on their defaults.
* scikit-learn: MLPClassifier with the same hidden layer, activation, optimiser, step and
  batch size (its other settings at their defaults, e.g. the L2 penalty alpha=1e-4),
  trained epoch by epoch with partial_fit.

Both keep the weights of their best epoch on validation accuracy and stop when it has not
improved for --patience epochs. The script prints the test accuracy of each, the published
baselines and the time per epoch, and writes the train/validation curves and a confusion
matrix of the tinymeta model on the test set.
"""
import copy
import sys
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from tinymeta import metrics, nn, optim
from tinymeta.data import (FASHION_MNIST_CLASSES, DatasetError, MissingDependencyError,
                           load_fashion_mnist, load_mnist)
from tinymeta.nn import functional as F
from tinymeta.train import EarlyStopping, evaluate, fit
from _common import parse_args, pyplot, savefig, section

# Published references (Zalando's scikit-learn benchmark of Fashion-MNIST, on the same
# 60,000/10,000 split); the script measures the MLPClassifier itself, on our split.
PUBLISHED = {"scikit-learn MLPClassifier (published)": "0.87-0.88",
             "logistic regression (published)": "0.84"}
TARGET = 0.87


def extra(parser):
    parser.add_argument("--data", metavar="PATH",
                        help="folder with MNIST-format IDX files (train-images-idx3-ubyte[.gz], ...) "
                             "to use instead of Debian's Fashion-MNIST")
    parser.add_argument("--epochs", type=int, default=30, help="most epochs to train (default 30)")
    parser.add_argument("--patience", type=int, default=5,
                        help="stop after this many epochs without a better validation accuracy "
                             "(default 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default 32)")
    parser.add_argument("--no-sklearn", action="store_true",
                        help="skip the scikit-learn comparison")


def load(args):
    """(X_train, y_train, X_val, y_val, X_test, y_test, name, class names)."""
    if args.data:
        X, y = load_mnist(args.data, "train")
        X_te, y_te = load_mnist(args.data, "test")
        name, classes = f"IDX files in {args.data}", [str(c) for c in range(10)]
    else:
        X, y = load_fashion_mnist("train")
        X_te, y_te = load_fashion_mnist("test")
        name, classes = "Fashion-MNIST", list(FASHION_MNIST_CLASSES)
    if args.quick:  # a slice, so the smoke test stays a smoke test
        X, y, X_te, y_te = X[:4000], y[:4000], X_te[:1000], y_te[:1000]
    n_val = len(X) // 5
    return X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:], X_te, y_te, name, classes


def train_tinymeta(args, X_tr, y_tr, X_val, y_val):
    model = nn.MLP([X_tr.shape[1], 64, 10], activation="relu", rng=args.seed)
    print(f"MLP {X_tr.shape[1]}-64-10, {model.num_parameters()} parameters; Adam lr 1e-3, "
          f"batch {args.batch_size}, cross-entropy")
    t0 = time.perf_counter()
    history = fit(model, F.cross_entropy, optim.Adam(model.parameters(), lr=1e-3), (X_tr, y_tr),
                  val=(X_val, y_val), epochs=args.epochs, batch_size=args.batch_size, rng=args.seed,
                  early_stopping=EarlyStopping(patience=args.patience, monitor="val_acc"))
    per_epoch = (time.perf_counter() - t0) / max(history.epochs, 1)
    return model, history, per_epoch


def train_sklearn(args, X_tr, y_tr, X_val, y_val):
    """MLPClassifier epoch by epoch, with the same keep-the-best-epoch rule as fit."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", solver="adam",
                        learning_rate_init=1e-3, batch_size=args.batch_size, random_state=args.seed)
    curve, times, best, best_acc, wait = [], [], None, -1.0, 0
    bar = tqdm(range(args.epochs), desc="scikit-learn", unit="epoch", disable=not sys.stderr.isatty())
    for _ in bar:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(X_tr, y_tr, classes=np.arange(10))
        acc = clf.score(X_val, y_val)
        times.append(time.perf_counter() - t0)   # like fit's epochs: training plus validation
        curve.append(acc)
        bar.set_postfix(val_acc=f"{acc:.4f}")
        if acc > best_acc:
            best, best_acc, wait = copy.deepcopy(clf), acc, 0
        else:
            wait += 1
            if wait >= args.patience:
                break
    bar.close()
    return best, curve, float(np.mean(times))


def confusion_figure(cm, classes, title):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 6.2))
    # Row-normalised colours (each true class sums to 1), raw counts written in the cells.
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for r in range(len(classes)):
        for c in range(len(classes)):
            if cm[r, c]:
                ax.text(c, r, str(cm[r, c]), ha="center", va="center", fontsize=7.5,
                        color="white" if rates[r, c] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    return fig


def main():
    args = parse_args("13_fashion_mnist", __doc__, extra)
    if args.quick:
        args.epochs, args.patience = min(args.epochs, 2), min(args.patience, 2)
    try:
        X_tr, y_tr, X_val, y_val, X_te, y_te, data_name, classes = load(args)
    except (MissingDependencyError, DatasetError) as exc:   # no package, or a bad --data folder
        sys.exit(f"13_fashion_mnist.py: {exc}")

    section(f"Data: {data_name}")
    print(f"train {X_tr.shape}, validation {X_val.shape} (last 20% of the training images), "
          f"test {X_te.shape}; pixels in [{X_tr.min():.0f}, {X_tr.max():.0f}]")
    print("images per class in train:", np.bincount(y_tr, minlength=10).tolist())

    section("tinymeta: 784-64-10 MLP with tinymeta.train.fit")
    model, history, tm_epoch = train_tinymeta(args, X_tr, y_tr, X_val, y_val)
    best = history.best_epoch
    print(f"\n{'epoch':>5} {'train loss':>10} {'val loss':>9} {'train acc':>9} {'val acc':>8}")
    for e in range(history.epochs):
        mark = "  <- kept (best validation accuracy)" if e == best else ""
        print(f"{e + 1:>5} {history['train_loss'][e]:>10.4f} {history['val_loss'][e]:>9.4f} "
              f"{history['train_acc'][e]:>9.4f} {history['val_acc'][e]:>8.4f}{mark}")
    test = evaluate(model, F.cross_entropy, (X_te, y_te))
    print(f"test accuracy {test['acc']:.4f} (loss {test['loss']:.4f}); {tm_epoch:.2f} s per epoch")

    rows = [("tinymeta MLP 784-64-10, Adam", f"{test['acc']:.4f}", f"{best + 1} of {history.epochs}",
             f"{tm_epoch:.2f} s")]
    sk_curve = None
    if not args.no_sklearn:
        section("scikit-learn: MLPClassifier(hidden_layer_sizes=(64,)), same split")
        clf, sk_curve, sk_epoch = train_sklearn(args, X_tr, y_tr, X_val, y_val)
        sk_acc = clf.score(X_te, y_te)
        sk_best = int(np.argmax(sk_curve))
        print("validation accuracy per epoch: " + ", ".join(f"{a:.4f}" for a in sk_curve))
        print(f"test accuracy {sk_acc:.4f}; {sk_epoch:.2f} s per epoch")
        rows.append(("scikit-learn MLPClassifier (64,), adam", f"{sk_acc:.4f}",
                     f"{sk_best + 1} of {len(sk_curve)}", f"{sk_epoch:.2f} s"))
    rows += [(name, acc, "", "") for name, acc in PUBLISHED.items()]

    section(f"Test accuracy on {len(X_te)} {data_name} images")
    print(f"{'model':<42} {'test acc':>9} {'best epoch':>11} {'time/epoch':>11}")
    for r in rows:
        print(f"{r[0]:<42} {r[1]:>9} {r[2]:>11} {r[3]:>11}")
    if args.quick:
        print("(--quick: a 4,000-image slice and 2 epochs; the targets below are for the full run)")
    verdicts = [f"at least {TARGET}: {'yes' if test['acc'] >= TARGET else 'no'}"]
    if sk_curve is not None:
        verdicts.append(f"at least scikit-learn's {sk_acc:.4f}: {'yes' if test['acc'] >= sk_acc else 'no'}")
    print("tinymeta " + "; ".join(verdicts))

    section("Pictures")
    fig = history.plot()
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label() in ("train", "validation"):
                line.set_label(f"tinymeta {line.get_label()}")
        ax.legend()
    if sk_curve is not None:  # scikit-learn's validation accuracy on the same axes, for comparison
        acc_ax = fig.axes[1]
        acc_ax.plot(np.arange(1, len(sk_curve) + 1), sk_curve, ":", color="tab:green",
                    label="scikit-learn validation")
        acc_ax.legend()
    fig.suptitle(f"{data_name}: 784-64-10 MLP, Adam, train vs validation "
                 f"(test accuracy {test['acc']:.3f})")
    fig.tight_layout()
    savefig(fig, args, "curves.png")

    pred = np.concatenate([model(X_te[i:i + 2000]).numpy().argmax(1) for i in range(0, len(X_te), 2000)])
    cm = metrics.confusion_matrix(y_te, pred, labels=np.arange(10))
    savefig(confusion_figure(cm, classes, f"{data_name}, tinymeta 784-64-10: test confusion matrix\n"
                                          f"(accuracy {test['acc']:.3f}; counts, colour = row fraction)"),
            args, "confusion.png")
    per_class = np.diag(cm) / np.maximum(cm.sum(1), 1)
    print("test accuracy per class: " + ", ".join(f"{c} {a:.2f}" for c, a in zip(classes, per_class)))
    worst = np.argsort(per_class)[:2]
    # What to notice: the errors sit among the upper-body garments (shirt, T-shirt, pullover, coat).
    print(f"hardest classes: {classes[worst[0]]} and {classes[worst[1]]}; most confused pair: "
          + "{} taken for {}".format(*[classes[i] for i in np.unravel_index(
              np.argmax(cm - np.diag(np.diag(cm))), cm.shape)]))


if __name__ == "__main__":
    main()
