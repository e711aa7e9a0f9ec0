"""Train action-conditioned DiT world models on curated shards: VAE, DiT, trainer, sampler."""
