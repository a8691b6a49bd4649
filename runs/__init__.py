"""The orchestration layer: CLI, configs, the training loop, run folders, checkpoints, video."""
