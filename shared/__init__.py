"""dlsuite's shared library: architectures, data, training engine, export, evaluation."""
