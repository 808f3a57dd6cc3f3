"""The training harness: run directories, the trainer, checkpoints, distributed set-up, recipes."""
