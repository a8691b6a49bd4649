"""Decision makers: active-inference agents, model-based reward planners, SB3 baselines.

``AGENTS`` maps an agent name to ``("module:attr", one-line description)``; entries are
imported only when used.
"""

AGENTS: dict[str, tuple[str, str]] = {}
