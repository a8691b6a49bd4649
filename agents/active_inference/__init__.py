"""Active-inference agents: expected free energy of futures imagined in a world model.

``efe`` (the terms, pure functions), ``imagination`` (batched rollouts in the ensemble or
the RSSM), ``preferences`` (where ``log p̃`` comes from), ``objective`` (reward,
preference, EFE, FEEF), ``planner`` (CEM, MPPI), ``policy`` (amortised actor-critic),
``config`` (the agent's ``Config`` and per-task ``TUNED`` settings) and ``agent`` (the agent
and its training loop).
"""
