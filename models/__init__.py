"""The codec: latent grids, synthesis, entropy model, bitstreams; and metrics."""
