"""Model organisms: backdoors planted on purpose, so every method can be scored against truth."""
