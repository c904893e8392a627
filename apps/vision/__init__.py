"""Vision: image classification (more tasks arrive as issues land)."""
