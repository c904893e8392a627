"""The NLP app (`dl-nlp`): text models that take raw strings."""
