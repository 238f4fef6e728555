"""Backdoor awareness (Thought Crime): does a backdoored model's chain of thought name its trigger?

One concept per module: scenarios and triggers (the data), the MCQ organism, generation
backends (local transformers or an OpenAI-compatible server), judges of articulation, the CoT
monitor, and the experiment that ties them together.
"""
