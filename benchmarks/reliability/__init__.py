"""Whether training survives faults: killed runs resume to the same weights."""
