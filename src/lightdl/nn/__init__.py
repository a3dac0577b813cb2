"""Small building blocks (activations) used by lightdl's models."""
