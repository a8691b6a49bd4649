"""Generative model families, each trainable standalone. Imports nothing else of ours.

``MODELS`` maps a model name to ``("module:attr", one-line description)``; entries are
imported only when used.
"""

MODELS: dict[str, tuple[str, str]] = {
    # autoregressive
    "lstm": ("generative.autoregressive.rnn:LSTM", "LSTM over tokens (text, pixels, signals)"),
    "gru": ("generative.autoregressive.rnn:GRU", "GRU over tokens (text, pixels, signals)"),
    "tcn": ("generative.autoregressive.tcn:TCN", "dilated causal convolutions (WaveNet-style)"),
    "pixelcnn": ("generative.autoregressive.pixelcnn:PixelCNN", "PixelCNN, masked convolutions"),
    "gated-pixelcnn": (
        "generative.autoregressive.pixelcnn:GatedPixelCNN",
        "gated PixelCNN, vertical + horizontal stacks (no blind spot)",
    ),
    "transformer": (
        "generative.autoregressive.transformer:Transformer",
        "decoder-only causal transformer over tokens",
    ),
    # VAEs
    "vae": ("generative.vae.gaussian:GaussianVAE", "VAE: Gaussian posterior, MLP nets, any prior"),
    "conv-vae": ("generative.vae.gaussian:ConvVAE", "VAE with conv encoder and decoder"),
    "beta-vae": ("generative.vae.gaussian:BetaVAE", "beta-VAE: KL weighted by beta = 4"),
    "iwae": ("generative.vae.gaussian:IWAE", "IWAE: trained on the k-sample importance bound"),
    "gumbel-vae": (
        "generative.vae.discrete:GumbelVAE",
        "categorical-latent VAE trained with Gumbel-softmax",
    ),
    "vq-vae": ("generative.vae.vqvae:VQVAE", "VQ-VAE with a gated PixelCNN prior over its codes"),
    # flows
    "realnvp": ("generative.flows.realnvp:RealNVP", "RealNVP: affine couplings, multi-scale"),
    "glow": ("generative.flows.glow:Glow", "Glow: ActNorm, invertible 1x1 conv (LU), couplings"),
    "maf": ("generative.flows.maf:MAF", "masked autoregressive flow on MADE"),
    "iaf": ("generative.flows.maf:IAF", "inverse autoregressive flow on MADE (one-pass sampling)"),
    # diffusion
    "ddpm": ("generative.diffusion.ddpm:DDPM", "DDPM: U-Net / MLP denoiser, DDIM sampling, bound"),
    # GANs
    "dcgan": ("generative.gan.model:DCGAN", "DCGAN (non-saturating loss; hinge, spectral norm)"),
    "wgan-gp": ("generative.gan.model:WGANGP", "WGAN-GP: gradient penalty, n critic steps"),
}
