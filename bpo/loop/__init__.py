"""The online loop (Algorithm 1): the run configuration, building and checking its pieces, the session that trains."""
