"""Training: the optimiser step, the references the loss measures against, IOPO's players, batches, SFT."""
