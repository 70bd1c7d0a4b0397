"""Tasks: prompts, human reference texts, optional SFT demonstrations, and a judge."""
