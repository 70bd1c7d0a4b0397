"""The maths, as pure functions on tensors: the preference losses, the adapters' merge, the annotation schedule."""
