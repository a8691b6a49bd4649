"""Environment models composed from generative parts (RSSM, VAE + MDN-RNN, ensembles).

``WORLD_MODELS`` maps a name to ``("module:attr", one-line description)``; entries are
imported only when used.
"""

WORLD_MODELS: dict[str, tuple[str, str]] = {}
