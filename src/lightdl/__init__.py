"""lightdl: every deep-learning course concept as a swappable Hydra config option."""

__version__ = "0.1.0"
