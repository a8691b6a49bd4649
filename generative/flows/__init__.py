"""Normalising flows: RealNVP, Glow, MAF and IAF, for vectors and images, with exact densities.

The layers (:mod:`~generative.flows.coupling`, :mod:`~generative.flows.actnorm`,
:mod:`~generative.flows.invconv`, :mod:`~generative.flows.autoregressive`) share the
:class:`~generative.flows.bijection.Bijection` contract; :mod:`~generative.flows.density`
wraps a vector flow as a plain density module (a prior over latent vectors).
"""
