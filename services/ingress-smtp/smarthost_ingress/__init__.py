"""The SMTP ingress: speaks SMTP, asks the policy service, queues what it accepts."""
