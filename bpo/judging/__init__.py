"""Machine judgement: judges that score responses, annotators that label pairs, a phase's labelled pairs."""
