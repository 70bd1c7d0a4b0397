"""Models: loading, the LoRA ensemble policy, forward passes and log-probs, the sampler, devices and processes."""
