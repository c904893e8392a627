"""Task metrics and report plots (Keras/sklearn metrics, wrapped)."""
