"""Records and inputs: prompts and conversations, preference files, tokens, the task record, the loop's pairs and
batches."""
