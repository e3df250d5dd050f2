"""Training: the loop, its engine, schedule, objective, checkpoints, interrupts and faults."""
