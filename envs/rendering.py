"""Headless offscreen rendering: choosing MuJoCo's GL backend and drawing frames.

MuJoCo binds its OpenGL backend from ``MUJOCO_GL`` when it is first imported, so
:func:`select_gl_backend` must run before that import; :func:`envs.tasks.make_env` calls it
for every MuJoCo task. A user's own ``MUJOCO_GL`` always wins.

Frames for observations use fast settings (no shadows or reflections, no multisampling, an
offscreen buffer the size of the frame): in software rendering these cost far more than
the scene itself. Frames for people keep the model's own, prettier settings.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

BACKENDS = ("egl", "osmesa")
INSTALL_HINT = (
    "install the EGL/OSMesa system libraries with `bash scripts/install_system_deps.sh` "
    "(as root or with sudo), or set MUJOCO_GL to a backend that works on this machine"
)

# A frame source: called with no arguments, returns the current (H, W, 3) uint8 image.
FrameFn = Callable[[], np.ndarray]

_PROBE = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"
_selected: str | None = None


def quiet_headless_pygame() -> None:
    """Point pygame (classic-control drawing, moviepy) at SDL's dummy drivers unless set.

    Without a screen or sound card SDL's real drivers print errors on every start.
    """
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


class RenderingError(RuntimeError):
    """Offscreen rendering is impossible here; the message names the fix."""


def _backend_works(backend: str) -> bool:
    # A failed attempt in this process would leave PyOpenGL bound to the wrong platform,
    # so each backend is tried in a fresh interpreter.
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def select_gl_backend() -> str | None:
    """Set ``MUJOCO_GL`` to the first backend of :data:`BACKENDS` that renders here.

    Returns the backend in use, or ``None`` when mujoco was already imported without
    ``MUJOCO_GL`` (physics still works; rendering will then fail with a clear message).
    The user's own ``MUJOCO_GL`` is kept as it is. Raises :class:`RenderingError` when no
    backend works.
    """
    global _selected
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if "mujoco" in sys.modules:
        return None
    if _selected is None:
        for backend in BACKENDS:
            if _backend_works(backend):
                _selected = backend
                break
        else:
            raise RenderingError(
                f"no OpenGL backend for offscreen MuJoCo rendering works here "
                f"(tried {', '.join(BACKENDS)}); {INSTALL_HINT}"
            )
    os.environ["MUJOCO_GL"] = _selected
    os.environ.setdefault("PYOPENGL_PLATFORM", _selected)
    return _selected


@dataclasses.dataclass(frozen=True)
class CameraSpec:
    """Where a MuJoCo task is seen from.

    With ``track_body`` the camera follows that body (locomotion would run out of a fixed
    frame); otherwise it looks at ``lookat`` (the model's centre when ``None``).
    """

    distance: float | None = None
    """Distance from the point looked at (the model's extent when ``None``)."""
    elevation: float = -20.0
    """Degrees; negative looks down."""
    azimuth: float = 90.0
    """Degrees around the vertical axis."""
    lookat: tuple[float, float, float] | None = None
    track_body: str | None = None


def _camera(model: Any, spec: CameraSpec) -> Any:
    import mujoco

    cam = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, cam)
    if spec.track_body is not None:
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.track_body)
        if cam.trackbodyid < 0:
            raise ValueError(f"camera: no body named {spec.track_body!r} in the model")
    elif spec.lookat is not None:
        cam.lookat[:] = spec.lookat
    if spec.distance is not None:
        cam.distance = spec.distance
    cam.elevation = spec.elevation
    cam.azimuth = spec.azimuth
    return cam


class MujocoFrames:
    """Offscreen frames of a MuJoCo ``model``/``data`` pair, ``size`` x ``size`` pixels.

    ``fast=True`` (observations): shadows, reflections and multisampling off and an
    offscreen buffer the size of the frame. ``fast=False`` (videos for people): the
    model's own quality settings. Settings are applied only to this renderer's context;
    the model is left as it was. Calling the object returns a ``(size, size, 3)`` uint8
    array of the current state of ``data``.
    """

    def __init__(self, model: Any, data: Any, size: int, camera: CameraSpec, fast: bool = True):
        import mujoco

        self._data = data
        self._camera = _camera(model, camera)
        saved = (
            model.vis.global_.offwidth,
            model.vis.global_.offheight,
            model.vis.quality.offsamples,
        )
        if fast:
            model.vis.global_.offwidth = model.vis.global_.offheight = size
            model.vis.quality.offsamples = 0
        else:
            model.vis.global_.offwidth = max(size, saved[0])
            model.vis.global_.offheight = max(size, saved[1])
        try:
            self._renderer = mujoco.Renderer(model, height=size, width=size, max_geom=1000)
        except Exception as e:
            backend = os.environ.get("MUJOCO_GL")
            hint = INSTALL_HINT
            if not backend:
                hint = (
                    "mujoco was imported before a GL backend was chosen: set MUJOCO_GL=egl "
                    "(or osmesa), or make the env with envs.tasks.make_env before anything "
                    "imports mujoco"
                )
            raise RenderingError(
                f"offscreen MuJoCo rendering failed (MUJOCO_GL={backend!r}): {e}; {hint}"
            ) from e
        finally:
            model.vis.global_.offwidth, model.vis.global_.offheight = saved[:2]
            model.vis.quality.offsamples = saved[2]
        if fast:
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False

    def __call__(self) -> np.ndarray:
        self._renderer.update_scene(self._data, camera=self._camera)
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()


class ResizedRender:
    """Frames from ``env.render()`` (an ``rgb_array`` env), resized to ``size`` x ``size``.

    For tasks that draw themselves (classic control with pygame, the discrete tasks).
    Downsizing uses a box filter, which averages pixels instead of dropping them.
    """

    def __init__(self, env: Any, size: int):
        if getattr(env, "render_mode", None) != "rgb_array":
            raise ValueError("ResizedRender needs an env made with render_mode='rgb_array'")
        self._env = env
        self._size = size

    def __call__(self) -> np.ndarray:
        from PIL import Image

        frame = np.asarray(self._env.render())
        if frame.shape[:2] == (self._size, self._size):
            return frame
        filt = Image.Resampling.BOX if frame.shape[0] > self._size else Image.Resampling.NEAREST
        return np.asarray(Image.fromarray(frame).resize((self._size, self._size), filt))

    def close(self) -> None:
        pass
