"""Code shared by the smarthost services."""
