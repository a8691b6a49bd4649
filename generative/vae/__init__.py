"""The VAE family: Gaussian (MLP or conv; beta-VAE, IWAE; learned priors), categorical
(Gumbel-softmax) and VQ-VAE (PixelCNN prior).

Modules: ``nets`` (encoders and decoders, reused by world models), ``likelihoods``
(observation models), ``priors`` (the prior interface and its registry), ``base`` (what
every VAE shares), ``gaussian``, ``discrete``, ``quantizer`` and ``vqvae``.
"""
