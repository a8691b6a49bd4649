"""Decision makers: active-inference agents, model-based reward planners, SB3 baselines.

``AGENTS`` maps an agent name to ``("module:attr", one-line description)``; entries are
imported only when used. Each entry resolves to an agent class following
``agents.base.AgentClass`` (``cls(cfg, env, device, seed) -> Agent``).
"""

AGENTS: dict[str, tuple[str, str]] = {
    "aif": (
        "agents.active_inference.agent:ActiveInferenceAgent",
        "active inference: plans with a world model toward preferred outcomes (EFE, FEEF, ...)",
    ),
    "mbrl": (
        "agents.model_based:ModelBasedAgent",
        "model-based reward planner (PETS/PlaNet style): the aif agent with objective=reward",
    ),
    "sac": ("agents.sb3:SAC", "Soft Actor-Critic (stable-baselines3), reward-driven baseline"),
    "td3": ("agents.sb3:TD3", "Twin Delayed DDPG (stable-baselines3), reward-driven baseline"),
    "pymdp": (
        "agents.discrete:PymdpAgent",
        "discrete active inference (pymdp): plans with a discrete task's A, B, C, D",
    ),
    "qlearning": (
        "agents.qlearning:QLearningAgent",
        "tabular Q-learning over observation histories, reward-driven baseline (discrete tasks)",
    ),
    "ppo": (
        "agents.sb3:PPO",
        "Proximal Policy Optimization (stable-baselines3), on-policy baseline",
    ),
}
