"""The policy service: every relay decision the ingress enforces is made here."""
