"""Image-restoration baselines at official shapes (NAFNet, Restormer)."""
