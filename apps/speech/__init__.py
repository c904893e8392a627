"""Speech app: a synthetic speech corpus, speech recognition and keyword spotting."""
