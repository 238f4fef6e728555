"""Sparse autoencoders: the model, its file formats, training, measurement and latent labels."""
