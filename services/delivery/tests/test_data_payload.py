import pytest

from smarthost_delivery.smtp_client import data_payload


@pytest.mark.parametrize(
    ("message", "sent"),
    [
        (b"Subject: x\r\n\r\nclean\r\n", b"Subject: x\r\n\r\nclean\r\n.\r\n"),
        (b"no end of line", b"no end of line\r\n.\r\n"),
        (b"", b"\r\n.\r\n"),
        (b".first\r\n..second\r\n.\r\n", b"..first\r\n...second\r\n..\r\n.\r\n"),
        (b"bare LF\nbare CR\rboth\r\n\n.\r.", b"bare LF\r\nbare CR\r\nboth\r\n\r\n..\r\n..\r\n.\r\n"),
        (b"\r\r\n\n", b"\r\n\r\n\r\n.\r\n"),
    ],
)
def test_the_body_leaves_with_crlf_only_and_dot_stuffed(message: bytes, sent: bytes) -> None:
    assert data_payload(message) == sent
