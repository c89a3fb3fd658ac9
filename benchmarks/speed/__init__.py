"""How fast training, its parts and the LR range test run: time to accuracy, throughput, step and layer costs."""
