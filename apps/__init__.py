"""dlsuite applications: each app is a task registry over the shared library."""
