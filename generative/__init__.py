"""Generative model families, each trainable standalone. Imports nothing else of ours.

``MODELS`` maps a model name to ``("module:attr", one-line description)``; entries are
imported only when used.
"""

MODELS: dict[str, tuple[str, str]] = {}
