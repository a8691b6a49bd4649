"""Expected free energy of policies in a discrete generative model, in plain NumPy.

A reference computation in pymdp's layout (``A[m]``: ``(num_obs[m], *deps)``, ``B[f]``:
``(next, *deps, action)``, ``C[m]`` log-preferences over outcomes, beliefs ``qs[f]`` per
factor), independent of pymdp and JAX: the tests check it against pymdp, and the
continuous agents' tests use it on discrete cases. For a policy ``u_1..u_T`` the beliefs are
rolled forward with ``B`` under the mean-field (factorised) approximation, as pymdp does,
and at each step ``t``::

    q(o_t)      = A · q(s_t)
    pragmatic_t = sum_m q(o_t^m) · C[m]                     (expected utility)
    epistemic_t = sum_m H[q(o_t^m)] - E_q(s_t)[H[A[m]]]     (expected state information gain)
    novelty_t   = expected information gain about A (from pA) and B (from pB)

``neg_efe = sum_t pragmatic_t + epistemic_t + novelty_t`` is pymdp's ``neg_efe`` (``-G``).
The parameter term is the exact Dirichlet information gain (Da Costa et al. 2020, eq.
D.15), pymdp's default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import digamma

TINY = np.finfo(float).eps
"""Clip for logarithms (pymdp's MINVAL)."""


def contract(tensor: np.ndarray, factors: Sequence[np.ndarray]) -> np.ndarray:
    """Contract the last ``len(factors)`` axes of ``tensor`` with ``factors`` (one vector
    per axis): ``(K, N_1, ..., N_k) -> (K,)``, or ``(N_1, ..., N_k) ->`` a scalar array."""
    out = tensor
    for q in reversed(factors):
        out = out @ q
    return out


def _entropy(p: np.ndarray) -> float:
    return float(-(p * np.log(np.clip(p, TINY, None))).sum())


def dirichlet_info_weights(p: np.ndarray) -> np.ndarray:
    """Weights ``W`` with ``E[info gain about the Dirichlet-distributed columns] = o · W s``
    (positive; axis 0 is the outcome): ``log sum(a) - log a + psi(a + 1) - psi(sum(a) + 1)``.
    """
    a = np.clip(p, TINY, None)
    total = np.clip(a.sum(axis=0, keepdims=True), TINY, None)
    return np.log(total) - np.log(a) + digamma(a + 1.0) - digamma(total + 1.0)


def expected_states(
    qs: Sequence[np.ndarray],
    B: Sequence[np.ndarray],
    action: Sequence[int],
    B_dependencies: Sequence[Sequence[int]],
) -> list[np.ndarray]:
    """``q(s_{t+1})`` per factor from ``q(s_t)`` and one action per factor."""
    return [
        contract(b[..., int(u)], [qs[d] for d in deps])
        for b, u, deps in zip(B, action, B_dependencies, strict=True)
    ]


def expected_outcomes(
    qs: Sequence[np.ndarray], A: Sequence[np.ndarray], A_dependencies: Sequence[Sequence[int]]
) -> list[np.ndarray]:
    """``q(o^m)`` per modality: ``A[m]`` contracted with the beliefs of its factors."""
    return [contract(a, [qs[d] for d in deps]) for a, deps in zip(A, A_dependencies, strict=True)]


def neg_efe_terms(
    qs: Sequence[np.ndarray],
    A: Sequence[np.ndarray],
    B: Sequence[np.ndarray],
    C: Sequence[np.ndarray],
    policy: np.ndarray,
    A_dependencies: Sequence[Sequence[int]],
    B_dependencies: Sequence[Sequence[int]],
    pA: Sequence[np.ndarray] | None = None,
    pB: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """The parts of the negative expected free energy of one policy.

    ``policy``: ``(T, num_factors)`` action indices. ``C[m]``: ``(num_obs[m],)`` or
    ``(T, num_obs[m])`` (time-varying). With ``pA`` / ``pB`` (Dirichlet counts shaped as
    ``A`` / ``B``) the novelty term is included. Returns ``pragmatic``, ``epistemic``,
    ``novelty`` and their sum ``neg_efe`` (pymdp's sign: larger is better).
    """
    policy = np.asarray(policy)
    pragmatic = epistemic = novelty = 0.0
    wA = None if pA is None else [dirichlet_info_weights(p) * (p > 0) for p in pA]
    for t in range(policy.shape[0]):
        qs_next = expected_states(qs, B, policy[t], B_dependencies)
        qo = expected_outcomes(qs_next, A, A_dependencies)
        for m, (a, deps) in enumerate(zip(A, A_dependencies, strict=True)):
            c = np.asarray(C[m])
            pragmatic += float(qo[m] @ (c[t] if c.ndim > 1 else c))
            ambiguity = -(a * np.log(np.clip(a, TINY, None))).sum(axis=0)
            epistemic += _entropy(qo[m]) - float(contract(ambiguity, [qs_next[d] for d in deps]))
            if wA is not None:
                novelty += float(qo[m] @ contract(wA[m], [qs_next[d] for d in deps]))
        if pB is not None:
            for f, (p, deps) in enumerate(zip(pB, B_dependencies, strict=True)):
                p_u = p[..., int(policy[t][f])]
                w = dirichlet_info_weights(p_u) * (p_u > 0)
                novelty += float(qs_next[f] @ contract(w, [qs[d] for d in deps]))
        qs = qs_next
    return {
        "pragmatic": pragmatic,
        "epistemic": epistemic,
        "novelty": novelty,
        "neg_efe": pragmatic + epistemic + novelty,
    }


def neg_efe_of_policies(
    qs: Sequence[np.ndarray],
    A: Sequence[np.ndarray],
    B: Sequence[np.ndarray],
    C: Sequence[np.ndarray],
    policies: np.ndarray,
    A_dependencies: Sequence[Sequence[int]],
    B_dependencies: Sequence[Sequence[int]],
    pA: Sequence[np.ndarray] | None = None,
    pB: Sequence[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`neg_efe_terms` of every policy in ``policies`` ``(P, T, num_factors)``:
    each entry ``(P,)``."""
    rows = [
        neg_efe_terms(qs, A, B, C, policy, A_dependencies, B_dependencies, pA, pB)
        for policy in np.asarray(policies)
    ]
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}
