"""Did a method name the trigger? Concept probe sets, latent selectivity, scores, the benchmark."""
