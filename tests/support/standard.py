"""The standard test world: the DNS zone most tests use and the policy that makes loopback a customer."""

from support.dns_server import a, mx, null_mx

# Destination MX hosts of the standard test zone: one loopback address each.
MX_HOSTS = {"example.test": "127.0.0.2", "other.test": "127.0.0.3", "sender.test": "127.0.0.4"}

STANDARD_ZONE = [
    *(record for domain, ip in MX_HOSTS.items() for record in (mx(domain, f"mx.{domain}"), a(f"mx.{domain}", ip))),
    null_mx("nullmx.test"),
]

DEFAULT_POLICY = """
defaults:
  maxMessageSize: 20971520
  rateLimit: {messages: 160, per: 6h}
  requireMx: true
  maxRecipients: 100
customers:
  - name: loopback
    networks: [127.0.0.1/32, "::1/128"]
"""

# The standard customer with a rate limit no load test or benchmark reaches.
UNLIMITED_POLICY = DEFAULT_POLICY.replace(
    "rateLimit: {messages: 160, per: 6h}", "rateLimit: {messages: 1000000, per: 6h}"
)
assert UNLIMITED_POLICY != DEFAULT_POLICY, "the standard policy's rate limit changed; update UNLIMITED_POLICY"
