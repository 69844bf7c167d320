"""What the streaming job records about itself as it runs: every micro-batch (a
StreamingQueryListener), consumer lag and group commits, flushed from the job's main loop."""
