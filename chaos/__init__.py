"""`make chaos`: fault injection and hostile input against real processes, exactly reconciled."""
