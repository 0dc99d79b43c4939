"""Helpers shared by the meta-learner tests: a float64 sinusoid batch, finite-difference and
analytic meta-gradients."""
import numpy as np

from tinymeta import meta


def _sinusoid_batch(n=3, k=5, seed=0):
    return meta.tasks.Sinusoid(k, k, dtype=np.float64).sample(n, seed)


def _fd_grad(loss_fn, param, eps=1e-6):
    num = np.zeros_like(param.data)
    for idx in np.ndindex(param.shape):
        orig = param.data[idx]
        param.data[idx] = orig + eps
        plus = loss_fn().item()
        param.data[idx] = orig - eps
        minus = loss_fn().item()
        param.data[idx] = orig
        num[idx] = (plus - minus) / (2 * eps)
    return num


def _analytic(learner, batch):
    for p in learner.parameters():
        p.grad = None
    learner.meta_loss(batch).backward()
    return [p.grad.data.copy() for p in learner.parameters()]
