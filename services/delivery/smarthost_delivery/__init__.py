"""The delivery worker: everything that happens to a message after the 250."""
