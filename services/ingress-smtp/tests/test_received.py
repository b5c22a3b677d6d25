from smarthost_ingress.received import received_header
from smarthost_ingress.replies import printable


def test_received_names_a_single_recipient_only() -> None:
    one = received_header(
        helo="h.test",
        client_ip="127.0.0.1",
        hostname="relay",
        queue_id="Q1",
        protocol="ESMTP",
        tls="",
        recipients=["a@b"],
    )
    two = received_header(
        helo="h.test",
        client_ip="127.0.0.1",
        hostname="relay",
        queue_id="Q1",
        protocol="ESMTP",
        tls="",
        recipients=["a@b", "c@d"],
    )
    assert b"for <a@b>" in one
    assert b"for <" not in two
    assert one.startswith(b"Received: from h.test ([127.0.0.1])\r\n\tby relay (smarthost) with ESMTP id Q1")
    assert one.endswith(b"\r\n") and b"\n" not in one.replace(b"\r\n", b"")


def test_client_text_is_made_printable() -> None:
    assert printable("a\r\nb\x00c\xe9") == "a??b?c?"
