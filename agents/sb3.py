"""stable-baselines3 SAC, TD3 and PPO behind the :class:`agents.base.Agent` interface.

The algorithms are SB3's own; this module only adapts them to chunked training:

- ``train_until`` calls ``model.learn(..., reset_num_timesteps=False)`` with a callback that
  logs every finished episode and stops at the first episode end at or after the target.
  SB3 returns from that step before its bookkeeping, so :meth:`SB3Agent._finish_step` does
  the rest of the step as SB3 would have (store the transition, the gradient steps due,
  PPO's rollout entry), and the next chunk starts from a fresh ``reset`` of the next
  episode, resumed run or not.
- PPO keeps a partly filled rollout across a chunk boundary (:class:`CarriedRolloutBuffer`)
  instead of dropping it, so evaluations do not cost it data.
- ``state_dict`` holds what SB3's own ``save`` would (``get_parameters``: networks and
  optimisers; SAC's entropy coefficient) plus what it leaves out: the replay buffer or the
  partial rollout, ``VecNormalize`` statistics, the counters, the action-space generator
  and the episode index. It is made of tensors, numbers and strings (SB3's zip files
  pickle objects, so they are not used for checkpoints).

Hyper-parameters: SB3's defaults in each ``Config``, per-task values in
:mod:`agents.hyperparams`. SB3 agents take the reward objective, and state vectors (SB3's
``MlpPolicy``) or pixels (``CnnPolicy``: its Nature-DQN encoder on frames scaled to [0, 1],
never ``VecNormalize``'s observation statistics).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from agents import hyperparams
from agents.base import EpisodeSeeds, EpisodeTracker, LogFn
from generative.base import check as _check
from generative.base import check_choice as _check_choice

# learn()'s own budget, never reached: the callback ends every chunk.
UNBOUNDED_STEPS = 2**62
NOISE_TYPES = ("none", "normal", "ornstein-uhlenbeck")


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SB3 SAC settings (SB3's defaults, but for ``buffer_size`` and ``learning_starts``)."""

    learning_rate: float = 3e-4
    """Adam learning rate of actor, critics and entropy coefficient (constant)."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (SB3: 1e6; 1e5 holds every step of our budgets)."""
    learning_starts: int = 100
    """Uniformly random steps before learning starts."""
    batch_size: int = 256
    tau: float = 0.005
    """Polyak coefficient of the target critics."""
    gamma: float = 0.99
    """Discount per agent decision."""
    train_freq: int = 1
    """Env steps between updates."""
    gradient_steps: int = 1
    """Gradient steps per update (-1: as many as env steps since the last one)."""
    ent_coef: float | str = "auto"
    """Entropy coefficient: a number, or auto / auto_<initial> to learn it."""
    use_sde: bool = False
    """State-dependent exploration (gSDE) instead of independent Gaussian noise."""
    sde_sample_freq: int = -1
    """Steps between gSDE noise matrices (-1: once per rollout)."""
    log_std_init: float = -3.0
    """Initial log standard deviation (SB3's default for SAC)."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics."""
    normalize: bool = False
    """Normalise observations and rewards with SB3's VecNormalize."""
    task: str = ""
    """The task (filled in by train-agent; selects nothing here, recorded for reference)."""

    def __post_init__(self) -> None:
        _common_checks(self)
        auto = isinstance(self.ent_coef, str) and (
            self.ent_coef == "auto" or self.ent_coef.startswith("auto_")
        )
        _check(
            auto or (isinstance(self.ent_coef, float | int) and self.ent_coef > 0),
            "ent_coef",
            self.ent_coef,
            "> 0, auto or auto_<initial value>",
        )
        _check(self.gradient_steps != 0, "gradient_steps", self.gradient_steps, "!= 0")


@dataclasses.dataclass(frozen=True)
class TD3Config:
    """SB3 TD3 settings (SB3's defaults, but for ``buffer_size``)."""

    learning_rate: float = 1e-3
    buffer_size: int = 100_000
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    train_freq: int = 1
    gradient_steps: int = 1
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5
    action_noise: str = "normal"
    """Exploration noise: none | normal | ornstein-uhlenbeck."""
    noise_std: float = 0.1
    """Its standard deviation (actions are in [-1, 1])."""
    net_arch: tuple[int, ...] = (400, 300)
    normalize: bool = False
    task: str = ""

    def __post_init__(self) -> None:
        _common_checks(self)
        _check_choice("action_noise", self.action_noise, NOISE_TYPES)
        _check(self.noise_std >= 0, "noise_std", self.noise_std, ">= 0")
        _check(self.policy_delay >= 1, "policy_delay", self.policy_delay, ">= 1")
        _check(self.gradient_steps != 0, "gradient_steps", self.gradient_steps, "!= 0")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """SB3 PPO settings (SB3's defaults)."""

    learning_rate: float = 3e-4
    n_steps: int = 2048
    """Env steps per rollout (one env)."""
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    use_sde: bool = False
    sde_sample_freq: int = -1
    log_std_init: float = 0.0
    ortho_init: bool = True
    """Orthogonal initialisation of the networks."""
    net_arch: tuple[int, ...] = (64, 64)
    normalize: bool = False
    task: str = ""

    def __post_init__(self) -> None:
        _common_checks(self)
        _check(self.n_steps >= 2, "n_steps", self.n_steps, ">= 2")
        _check(self.batch_size >= 2, "batch_size", self.batch_size, ">= 2")
        _check(self.n_epochs >= 1, "n_epochs", self.n_epochs, ">= 1")
        _check(0 <= self.gae_lambda <= 1, "gae_lambda", self.gae_lambda, "in [0, 1]")


def _common_checks(cfg: Any) -> None:
    _check(cfg.learning_rate > 0, "learning_rate", cfg.learning_rate, "> 0")
    _check(0 < cfg.gamma <= 1, "gamma", cfg.gamma, "in (0, 1]")
    _check(cfg.batch_size >= 1, "batch_size", cfg.batch_size, ">= 1")
    _check(all(w >= 1 for w in cfg.net_arch), "net_arch", cfg.net_arch, "positive widths")
    for name in ("buffer_size", "train_freq"):
        if hasattr(cfg, name):
            _check(getattr(cfg, name) >= 1, name, getattr(cfg, name), ">= 1")
    if hasattr(cfg, "learning_starts"):
        _check(cfg.learning_starts >= 0, "learning_starts", cfg.learning_starts, ">= 0")


class CarriedRolloutBuffer(RolloutBuffer):
    """SB3's rollout buffer whose next ``reset`` can be skipped once (``keep = True``), so a
    rollout cut by a chunk boundary continues in the next chunk."""

    keep = False

    def reset(self) -> None:
        if self.keep:
            self.keep = False
            return
        super().reset()


class _ForwardLogs(KVWriter):
    """SB3's logger output, forwarded to ``log``: ``train/x`` becomes ``losses/x``
    (``learning_rate`` and ``n_updates`` go to ``charts/``); wall-time and SB3's own
    episode statistics are dropped (episodes are logged by the callback)."""

    def __init__(self) -> None:
        self.log: LogFn | None = None

    def write(self, key_values: Mapping[str, Any], key_excluded: Any, step: int = 0) -> None:
        metrics = {}
        for key, value in key_values.items():
            if not key.startswith("train/") or not isinstance(value, int | float | np.number):
                continue
            name = key.removeprefix("train/")
            group = "charts" if name in ("learning_rate", "n_updates") else "losses"
            metrics[f"{group}/{name}"] = float(value)
        if metrics and self.log is not None:
            self.log(metrics, step)

    def close(self) -> None:
        pass


class _Chunk(BaseCallback):
    """Logs finished episodes and stops ``learn`` at the first episode end at or after
    ``target`` env steps."""

    def __init__(self, log: LogFn, target: int, agent: SB3Agent):
        super().__init__()
        self.log, self.target, self.agent = log, target, agent
        self.tracker = EpisodeTracker()
        self.stopped = False
        self.rollout_steps = 0

    def _on_rollout_start(self) -> None:
        self.rollout_steps = 0

    def _on_rollout_end(self) -> None:
        self.agent._rollout_complete()

    def _on_step(self) -> bool:
        self.rollout_steps += 1
        self.tracker.step(float(self.locals["rewards"][0]), self.locals["infos"][0])
        if not self.locals["dones"][0]:
            return True
        self.log(self.tracker.finish(), self.model.num_timesteps)
        if self.model.num_timesteps >= self.target:
            self.stopped = True
            return False
        return True


class SB3Agent:
    """An SB3 algorithm acting and learning in one env (see the module docstring).

    Subclasses set ``ALGORITHM`` (the SB3 class) and ``NAME`` (its key in
    :mod:`agents.hyperparams`) and build the model in :meth:`_model`.
    """

    SMOKE: ClassVar[Mapping[str, Any]] = {}
    OBJECTIVES: ClassVar[tuple[str, ...]] = ("reward",)
    PLANNERS: ClassVar[tuple[str, ...]] = ()
    OBS: ClassVar[tuple[str, ...]] = ("state", "pixels")
    NAME: ClassVar[str] = ""
    Config: ClassVar[type]

    def __init__(self, cfg: Any, env: gym.Env, device: torch.device, seed: int):
        if not isinstance(env.action_space, gym.spaces.Box) and self.NAME != "ppo":
            raise ValueError(f"{self.NAME} needs continuous (Box) actions, not {env.action_space}")
        self.cfg, self.env, self.seed = cfg, env, seed
        self._seeds = EpisodeSeeds(env, seed)
        venv: Any = DummyVecEnv([lambda: self._seeds])
        pixels = is_image_space(env.observation_space)
        if cfg.normalize:  # rewards only, for frames: CnnPolicy scales them itself
            venv = VecNormalize(venv, gamma=cfg.gamma, norm_obs=not pixels)
        self.vec_normalize: VecNormalize | None = venv if cfg.normalize else None
        self.model = self._model(venv, "CnnPolicy" if pixels else "MlpPolicy", device, seed)
        self._writer = _ForwardLogs()
        self.model.set_logger(Logger(folder=None, output_formats=[self._writer]))

    @classmethod
    def tuned(cls, task: str) -> dict[str, Any]:
        """Per-task overrides of ``Config`` from :mod:`agents.hyperparams`."""
        return hyperparams.tuned(cls.NAME, task)

    def _model(self, venv: Any, policy: str, device: torch.device, seed: int) -> Any:
        raise NotImplementedError

    # -- acting -------------------------------------------------------------------------------
    @property
    def env_steps(self) -> int:
        return int(self.model.num_timesteps)

    def act(self, obs: Any, state: Any = None, explore: bool = False) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: the policy's mean action, or a sample with ``explore``.

        ``obs`` is one ``(D,)`` vector or ``(3, H, W)`` frame; returns an ``(action_dim,)``
        action and ``None``.
        """
        if self.vec_normalize is not None:
            obs = self.vec_normalize.normalize_obs(np.asarray(obs))
        action, _ = self.model.predict(obs, deterministic=not explore)
        return action, None

    # -- training -----------------------------------------------------------------------------
    def train_until(self, env: gym.Env, env_steps: int, log: LogFn) -> None:
        if env is not self.env:
            raise ValueError("an SB3 agent trains in the env it was built with")
        if self.env_steps >= env_steps:
            return
        self._before_chunk()
        self._writer.log = log
        callback = _Chunk(log, env_steps, self)
        self.model.learn(UNBOUNDED_STEPS, callback=callback, reset_num_timesteps=False)
        if callback.stopped:
            self._finish_step(callback)
        # Every chunk starts with a reset of its first episode (made again after a resume):
        # forget the observation DummyVecEnv's automatic reset produced and its episode.
        self.model._last_obs = None
        self._seeds.episode -= 1
        self.model.logger.dump(self.env_steps)  # values recorded since SB3's last dump

    def _before_chunk(self) -> None:
        """Prepare the model for a chunk (PPO: continue a carried rollout)."""

    def _rollout_complete(self) -> None:
        """Called when SB3 finished a rollout inside ``learn``."""

    def _finish_step(self, callback: _Chunk) -> None:
        """Do what SB3 does after the callback of the step that ended the chunk."""
        raise NotImplementedError

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers and SAC's entropy coefficient (what SB3's ``save`` keeps), the
        replay buffer or partial rollout, VecNormalize statistics and the counters."""
        model = self.model
        _, variables = model._get_torch_save_params()
        state: dict[str, Any] = {
            "algorithm": self.NAME,
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "episode_num": int(model._episode_num),
            "episode": int(self._seeds.episode),
            "parameters": model.get_parameters(),
            "variables": {name: _getattr(model, name).detach().clone() for name in variables},
            "action_space_rng": json.dumps(model.action_space.np_random.bit_generator.state),
            "normalize": _normalize_state(self.vec_normalize),
        }
        state.update(self._buffer_state())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        model = self.model
        if state["algorithm"] != self.NAME:
            raise ValueError(f"checkpoint of {state['algorithm']}, not {self.NAME}")
        model.set_parameters(dict(state["parameters"]), exact_match=True, device=model.device)
        for name, value in state["variables"].items():
            # In place: the optimiser of SAC's log entropy coefficient holds this tensor.
            _getattr(model, name).data.copy_(value.to(model.device))
        model.num_timesteps = int(state["num_timesteps"])
        model._n_updates = int(state["n_updates"])
        model._episode_num = int(state["episode_num"])
        self._seeds.episode = int(state["episode"])
        model.action_space.np_random.bit_generator.state = json.loads(state["action_space_rng"])
        _load_normalize(self.vec_normalize, state["normalize"])
        self._load_buffer(state)
        model._last_obs = None

    def _buffer_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_buffer(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError


def _getattr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _normalize_state(venv: VecNormalize | None) -> dict[str, Any]:
    if venv is None:
        return {}
    state = {
        "ret_mean": float(venv.ret_rms.mean),
        "ret_var": float(venv.ret_rms.var),
        "ret_count": float(venv.ret_rms.count),
    }
    if venv.norm_obs:  # frames are not normalised: no statistics kept for them
        state["obs_mean"] = torch.from_numpy(venv.obs_rms.mean.copy())
        state["obs_var"] = torch.from_numpy(venv.obs_rms.var.copy())
        state["obs_count"] = float(venv.obs_rms.count)
    return state


def _load_normalize(venv: VecNormalize | None, state: Mapping[str, Any]) -> None:
    # Each None without VecNormalize, else whether observations (not frames) are normalised.
    normalises = None if venv is None else bool(venv.norm_obs)
    saved = ("obs_mean" in state) if state else None
    if normalises != saved:
        raise ValueError("the checkpoint's observation normalisation does not match the config")
    if venv is None:
        return
    if normalises:
        venv.obs_rms.mean = state["obs_mean"].numpy().copy()
        venv.obs_rms.var = state["obs_var"].numpy().copy()
        venv.obs_rms.count = float(state["obs_count"])
    venv.ret_rms.mean = np.float64(state["ret_mean"])
    venv.ret_rms.var = np.float64(state["ret_var"])
    venv.ret_rms.count = float(state["ret_count"])


# -- off-policy: SAC and TD3 -----------------------------------------------------------------

REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


class OffPolicyAgent(SB3Agent):
    """SAC and TD3: one replay buffer, updates every ``train_freq`` steps."""

    def _finish_step(self, callback: _Chunk) -> None:
        # The rest of OffPolicyAlgorithm.collect_rollouts' loop body after the callback...
        model, loc = self.model, callback.locals
        model._update_info_buffer(loc["infos"], loc["dones"])
        model._store_transition(
            model.replay_buffer, loc["buffer_actions"], loc["new_obs"], loc["rewards"],
            loc["dones"], loc["infos"],
        )  # fmt: skip
        model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
        model._on_step()
        model._episode_num += 1
        if model.action_noise is not None:
            model.action_noise.reset()
        # ...and the gradient steps learn() does after a rollout.
        if model.num_timesteps > model.learning_starts:
            steps = model.gradient_steps if model.gradient_steps >= 0 else callback.rollout_steps
            if steps > 0:
                model.train(batch_size=model.batch_size, gradient_steps=steps)

    def _buffer_state(self) -> dict[str, Any]:
        buffer: ReplayBuffer = self.model.replay_buffer
        n = buffer.buffer_size if buffer.full else buffer.pos
        arrays = {
            name: torch.from_numpy(getattr(buffer, name)[:n].copy())
            for name in REPLAY_ARRAYS
            if getattr(buffer, name, None) is not None
        }
        return {"replay": {"pos": int(buffer.pos), "full": bool(buffer.full), **arrays}}

    def _load_buffer(self, state: Mapping[str, Any]) -> None:
        buffer: ReplayBuffer = self.model.replay_buffer
        saved = state["replay"]
        for name in REPLAY_ARRAYS:
            if name in saved:
                values = saved[name].numpy()
                getattr(buffer, name)[: len(values)] = values
        buffer.pos, buffer.full = int(saved["pos"]), bool(saved["full"])


class SAC(OffPolicyAgent):
    """Soft Actor-Critic (SB3)."""

    Config = SACConfig
    NAME = "sac"
    SMOKE: ClassVar[Mapping[str, Any]] = {
        "net_arch": (32, 32),
        "batch_size": 32,
        "learning_starts": 50,
        "buffer_size": 5000,
    }

    def _model(self, venv: Any, policy: str, device: torch.device, seed: int) -> Any:
        from stable_baselines3 import SAC as SB3SAC

        c = self.cfg
        return SB3SAC(
            policy,
            venv,
            learning_rate=c.learning_rate,
            buffer_size=c.buffer_size,
            learning_starts=c.learning_starts,
            batch_size=c.batch_size,
            tau=c.tau,
            gamma=c.gamma,
            train_freq=c.train_freq,
            gradient_steps=c.gradient_steps,
            ent_coef=c.ent_coef,
            use_sde=c.use_sde,
            sde_sample_freq=c.sde_sample_freq,
            policy_kwargs={"net_arch": list(c.net_arch), "log_std_init": c.log_std_init},
            seed=seed,
            device=device,
        )


class TD3(OffPolicyAgent):
    """Twin Delayed DDPG (SB3)."""

    Config = TD3Config
    NAME = "td3"
    SMOKE: ClassVar[Mapping[str, Any]] = {
        "net_arch": (32, 32),
        "batch_size": 32,
        "learning_starts": 50,
        "buffer_size": 5000,
    }

    def _model(self, venv: Any, policy: str, device: torch.device, seed: int) -> Any:
        from stable_baselines3 import TD3 as SB3TD3

        c = self.cfg
        dim = int(np.prod(venv.action_space.shape))
        noise = None
        if c.action_noise == "normal":
            noise = NormalActionNoise(np.zeros(dim), c.noise_std * np.ones(dim))
        elif c.action_noise == "ornstein-uhlenbeck":
            noise = OrnsteinUhlenbeckActionNoise(np.zeros(dim), c.noise_std * np.ones(dim))
        return SB3TD3(
            policy,
            venv,
            learning_rate=c.learning_rate,
            buffer_size=c.buffer_size,
            learning_starts=c.learning_starts,
            batch_size=c.batch_size,
            tau=c.tau,
            gamma=c.gamma,
            train_freq=c.train_freq,
            gradient_steps=c.gradient_steps,
            action_noise=noise,
            policy_delay=c.policy_delay,
            target_policy_noise=c.target_policy_noise,
            target_noise_clip=c.target_noise_clip,
            policy_kwargs={"net_arch": list(c.net_arch)},
            seed=seed,
            device=device,
        )


# -- on-policy: PPO --------------------------------------------------------------------------

ROLLOUT_ARRAYS = (
    "observations", "actions", "rewards", "returns", "episode_starts", "values", "log_probs",
    "advantages",
)  # fmt: skip


class PPO(SB3Agent):
    """Proximal Policy Optimization (SB3), one env; rollouts continue across chunks."""

    Config = PPOConfig
    NAME = "ppo"
    SMOKE: ClassVar[Mapping[str, Any]] = {
        "net_arch": (32, 32),
        "n_steps": 64,
        "batch_size": 32,
        "n_epochs": 2,
    }

    def _model(self, venv: Any, policy: str, device: torch.device, seed: int) -> Any:
        from stable_baselines3 import PPO as SB3PPO

        c = self.cfg
        policy_kwargs: dict[str, Any] = {"net_arch": list(c.net_arch), "ortho_init": c.ortho_init}
        if isinstance(venv.action_space, gym.spaces.Box):
            policy_kwargs["log_std_init"] = c.log_std_init
        return SB3PPO(
            policy,
            venv,
            learning_rate=c.learning_rate,
            n_steps=c.n_steps,
            batch_size=c.batch_size,
            n_epochs=c.n_epochs,
            gamma=c.gamma,
            gae_lambda=c.gae_lambda,
            clip_range=c.clip_range,
            ent_coef=c.ent_coef,
            vf_coef=c.vf_coef,
            max_grad_norm=c.max_grad_norm,
            use_sde=c.use_sde,
            sde_sample_freq=c.sde_sample_freq,
            rollout_buffer_class=CarriedRolloutBuffer,
            policy_kwargs=policy_kwargs,
            seed=seed,
            device=device,
        )

    @property
    def _buffer(self) -> CarriedRolloutBuffer:
        return self.model.rollout_buffer

    def _before_chunk(self) -> None:
        carried = 0 if self._buffer.full else self._buffer.pos
        # collect_rollouts() fills model.n_steps entries: the rest of a carried rollout.
        self._buffer.keep = carried > 0
        self.model.n_steps = self._buffer.buffer_size - carried

    def _rollout_complete(self) -> None:
        self.model.n_steps = self._buffer.buffer_size

    def _finish_step(self, callback: _Chunk) -> None:
        # The rest of OnPolicyAlgorithm.collect_rollouts' loop body after the callback.
        model, loc, buffer = self.model, callback.locals, self._buffer
        infos, dones, rewards = loc["infos"], loc["dones"], loc["rewards"]
        model._update_info_buffer(infos, dones)
        actions = loc["actions"]
        if isinstance(model.action_space, gym.spaces.Discrete):
            actions = actions.reshape(-1, 1)
        for idx, done in enumerate(dones):
            terminal = infos[idx].get("terminal_observation")
            if done and terminal is not None and infos[idx].get("TimeLimit.truncated", False):
                terminal_obs = model.policy.obs_to_tensor(terminal)[0]
                with torch.no_grad():
                    terminal_value = model.policy.predict_values(terminal_obs)[0]
                rewards[idx] += model.gamma * terminal_value
        buffer.add(
            model._last_obs, actions, rewards, model._last_episode_starts, loc["values"],
            loc["log_probs"],
        )  # fmt: skip
        model._last_obs = loc["new_obs"]
        model._last_episode_starts = dones
        if buffer.full:  # the step completed the rollout: SB3 would now train on it
            with torch.no_grad():
                values = model.policy.predict_values(obs_as_tensor(loc["new_obs"], model.device))
            buffer.compute_returns_and_advantage(last_values=values, dones=dones)
            self._rollout_complete()
            model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
            model.train()

    def _buffer_state(self) -> dict[str, Any]:
        buffer = self._buffer
        n = 0 if buffer.full else buffer.pos
        arrays = {
            name: torch.from_numpy(getattr(buffer, name)[:n].copy()) for name in ROLLOUT_ARRAYS
        }
        return {"rollout": {"pos": n, **arrays}}

    def _load_buffer(self, state: Mapping[str, Any]) -> None:
        buffer, saved = self._buffer, state["rollout"]
        buffer.reset()
        for name in ROLLOUT_ARRAYS:
            values = saved[name].numpy()
            getattr(buffer, name)[: len(values)] = values
        buffer.pos = int(saved["pos"])
