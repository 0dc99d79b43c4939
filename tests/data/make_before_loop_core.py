# Wrote the checkpoints beside it with tinymeta as it was before the shared loop core (commit cf53fa2),
# so tests can check that checkpoints written by that version still resume. Run from the repository
# root at that commit: PYTHONPATH=. python tests/data/make_before_loop_core.py
# Written again when Adam took PyTorch's order of operations (two divisions, not three): with the
# compiled _adam of cf53fa2 patched to the new order, so the files still hold that version's format
# and a straight run of today's code reaches the same parameters bit for bit.
import numpy as np
import tinymeta.nn.functional as F
from tinymeta import meta, nn, optim
from tinymeta.train import fit

rng = np.random.default_rng(0)
y = rng.integers(0, 3, 50)
X = rng.standard_normal((50, 4)) * 0.7 + np.eye(3, 4)[y] * 2.0
m = nn.MLP([4, 8, 3], rng=0, dtype="float32")
opt = optim.Adam(m.parameters(), lr=0.05, weight_decay=1e-3)
sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
fit(m, F.cross_entropy, opt, (X, y), val=(X[:20], y[:20]), epochs=3, batch_size=8, scheduler=sched,
    early_stopping={"patience": 50}, rng=7, progress=False, checkpoint="tests/data/fit-before-loop-core.npz")

maml = meta.MAML(nn.MLP([1, 8, 1], rng=0), 0.01, 1)
opt = optim.Adam(maml.parameters(), lr=1e-2)
meta.train(maml, meta.tasks.Sinusoid(5, 5), opt, iterations=10, meta_batch=4, rng=3, progress=False,
           checkpoint="tests/data/meta-before-loop-core.npz", checkpoint_every=5, log_every=5)
