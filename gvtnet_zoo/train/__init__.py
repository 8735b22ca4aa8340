"""Training: losses, the loop, checkpoints, logging, distributed set-up."""
