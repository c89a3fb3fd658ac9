"""What `mnistlab tune` finds, and at what cost."""
