"""Real components for tests: processes, Redis, DNS, SMTP peers, the relay."""
