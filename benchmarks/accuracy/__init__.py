"""What the defaults reach: `mnistlab train` run as a user would, over seeds."""
