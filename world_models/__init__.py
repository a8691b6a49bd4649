"""Environment models composed from generative parts (RSSM, VAE + MDN-RNN, ensembles).

``WORLD_MODELS`` maps a name to ``("module:attr", one-line description)``; entries are
imported only when used.
"""

WORLD_MODELS: dict[str, tuple[str, str]] = {
    "rssm": (
        "world_models.rssm:RSSM",
        "recurrent state-space model (GRU + Gaussian/categorical latent), pixels or state",
    ),
    "mdnrnn": (
        "world_models.mdnrnn:MDNRNN",
        "World Models: VAE on frames + mixture-density GRU over its latents, pixels or state",
    ),
    "ensemble": (
        "world_models.ensemble:EnsembleDynamics",
        "probabilistic ensemble of MLP dynamics (PETS, TS1/TSinf), state observations",
    ),
}
