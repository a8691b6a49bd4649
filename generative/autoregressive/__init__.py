"""Autoregressive models with exact likelihoods: RNNs, causal convolutions, PixelCNNs, transformers.

Every model factorises ``p(x) = prod_i p(x_i | x_<i)`` over the tokens of an example in a
fixed order (see :mod:`generative.autoregressive.base`).
"""
