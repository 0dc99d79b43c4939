"""An MLP classifier on handwritten digits: loss and accuracy curves, confusion matrix.

The classic beginner's model is a fully connected network with one hidden layer of 64
ReLU units and a 10-way softmax output, trained with Adam on MNIST (784 pixels) with 20%
of the training images held out for validation. Here:

* with ``--mnist PATH`` (a folder holding the standard IDX files, e.g.
  train-images-idx3-ubyte[.gz] ...), exactly that: 784-64-10 on MNIST;
* otherwise the same architecture on the 8x8 digits bundled offline: 64-64-10.

Training uses ``tinymeta.train.fit``; ``History.plot`` draws train vs validation curves.
"""
import numpy as np

from tinymeta import metrics, nn, optim
from tinymeta.data import load_digits, load_mnist, train_val_test_split
from tinymeta.nn import functional as F
from tinymeta.train import evaluate_model, fit
from _common import parse_args, pyplot, savefig, section


def extra(parser):
    parser.add_argument("--mnist", metavar="PATH",
                        help="folder with the MNIST IDX files: then the 784-64-10 model runs on MNIST "
                             "(about 20 s per epoch on one core: a few minutes in all)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64], metavar="H",
                        help="hidden layer sizes (default: 64, one hidden layer)")
    parser.add_argument("--epochs", type=int, help="epochs (default 60 on digits, 10 on MNIST)")


def load(args):
    """(X_train, y_train, X_val, y_val, X_test, y_test, name)."""
    if args.mnist:
        X, y = load_mnist(args.mnist, "train")
        X_test, y_test = load_mnist(args.mnist, "test")
        if args.quick:  # a slice, so the smoke test stays a smoke test
            X, y, X_test, y_test = X[:2000], y[:2000], X_test[:500], y_test[:500]
        # Keras-style validation_split=0.2: the last 20% of the training images.
        n_val = len(X) // 5
        return X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:], X_test, y_test, "MNIST"
    X, y = load_digits()
    X_tr, y_tr, X_val, y_val, X_te, y_te = train_val_test_split(
        X.astype(np.float32), y, val=0.2, test=0.2, rng=args.seed, stratify=True)
    return X_tr, y_tr, X_val, y_val, X_te, y_te, "8x8 digits"


def main():
    args = parse_args("04_mlp_digits", __doc__, extra)
    X_tr, y_tr, X_val, y_val, X_te, y_te, data_name = load(args)
    epochs = args.epochs or (10 if args.mnist else 60)
    if args.quick:
        epochs = min(epochs, 3)

    section(f"Data: {data_name}")
    print(f"train {X_tr.shape}, validation {X_val.shape}, test {X_te.shape}; "
          f"pixels in [{X_tr.min():.0f}, {X_tr.max():.0f}]")

    section("Model and training")
    sizes = [X_tr.shape[1], *args.hidden, 10]
    # Linear -> ReLU -> ... -> Linear. No softmax layer: F.cross_entropy takes logits
    # (softmax + log + NLL fused, stable for any logits). A softmax layer in the model
    # *and* a loss that applies its own would be the classic double-softmax slip.
    model = nn.MLP(sizes, activation="relu", rng=args.seed)
    print(f"MLP {'-'.join(map(str, sizes))}: {model.num_parameters()} parameters")
    print(model)
    history = fit(model, F.cross_entropy, optim.Adam(model.parameters(), lr=1e-3),
                  (X_tr, y_tr), val=(X_val, y_val), epochs=epochs, batch_size=32, rng=args.seed)
    print(f"\n{'epoch':>5} {'train loss':>10} {'val loss':>9} {'train acc':>9} {'val acc':>8}")
    for e in sorted(set(np.linspace(0, epochs - 1, 6).astype(int))):
        print(f"{e + 1:>5} {history['train_loss'][e]:>10.4f} {history['val_loss'][e]:>9.4f} "
              f"{history['train_acc'][e]:>9.4f} {history['val_acc'][e]:>8.4f}")
    savefig(history.plot(), args, "curves.png")

    section("Test set")
    test = evaluate_model(model, F.cross_entropy, (X_te, y_te))
    pred = np.concatenate([model(X_te[i:i + 1000]).numpy().argmax(1)
                           for i in range(0, len(X_te), 1000)])
    print(f"test loss {test['loss']:.4f}, test accuracy {test['acc']:.4f} "
          f"(metrics.accuracy: {metrics.accuracy(y_te, pred):.4f}, "
          f"macro F1 {metrics.f1_score(y_te, pred, average='macro'):.4f})")
    cm = metrics.confusion_matrix(y_te, pred, labels=np.arange(10))
    print("confusion matrix (rows: true digit, columns: predicted):")
    print("      " + " ".join(f"{c:>4}" for c in range(10)))
    for r in range(10):
        print(f"  {r:>2}: " + " ".join(f"{v:>4}" for v in cm[r]))
    # What to notice: the off-diagonal mass sits where digits look alike (e.g. 8 <-> 1, 9 <-> 3).

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(cm, cmap="Blues")
    for r in range(10):
        for c in range(10):
            if cm[r, c]:
                ax.text(c, r, str(cm[r, c]), ha="center", va="center", fontsize=7,
                        color="white" if cm[r, c] > cm.max() / 2 else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"{data_name}: confusion matrix (test accuracy {test['acc']:.3f})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    savefig(fig, args, "confusion_matrix.png")


if __name__ == "__main__":
    main()
