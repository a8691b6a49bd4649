"""Rollout videos for people: mp4 (imageio-ffmpeg) and animated GIF files in a run's ``videos/``.

Frames are ``(T, H, W, 3)`` uint8. The files are written inside the run folder that
:class:`runs.run.Run` owns, and the same frames go to TensorBoard through
:meth:`runs.run.Run.log_video`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from envs.rendering import quiet_headless_pygame
from runs.run import Run


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    return frames


def write_mp4(frames: np.ndarray, path: Path, fps: int = 30) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames as H.264 mp4 (H and W must be even)."""
    import imageio

    frames = _check_frames(frames)
    # macro_block_size=1 keeps the frame size exactly (the default would resize to x16).
    with imageio.v2.get_writer(
        path, fps=fps, codec="libx264", macro_block_size=1, ffmpeg_log_level="error"
    ) as writer:
        for frame in frames:
            writer.append_data(frame)
    return Path(path)


def write_gif(frames: np.ndarray, path: Path, fps: int = 30) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames as an endlessly looping animated GIF."""
    import imageio.v3 as iio

    iio.imwrite(path, _check_frames(frames), duration=1000 / fps, loop=0)
    return Path(path)


def save_episode_video(run: Run, frames: np.ndarray, episode: int, fps: int = 30) -> list[Path]:
    """``videos/episode-<episode>.mp4`` and ``.gif`` in ``run``'s folder, and TensorBoard.

    Returns the two paths.
    """
    stem = run.dir / "videos" / f"episode-{episode}"
    paths = [
        write_mp4(frames, stem.with_suffix(".mp4"), fps),
        write_gif(frames, stem.with_suffix(".gif"), fps),
    ]
    quiet_headless_pygame()  # TensorBoard's video encoder imports moviepy, which imports pygame
    run.log_video("videos/episode", frames, step=episode, fps=fps)
    return paths
