"""STARTTLS with a real CA, SMTP AUTH on the submission listener, with swaks as a real client."""

import shutil
import smtplib
import ssl
import time
from pathlib import Path

import pytest
import trustme
from support.ingress_clients import plain, swaks
from support.ingress_stack import HOSTNAME, SUBMISSION_PASSWORD, SUBMISSION_USER, Ingress, IngressStack
from support.waiting import wait_until


def test_ehlo_advertises_the_extensions(ingress: Ingress) -> None:
    with smtplib.SMTP("127.0.0.1", ingress.port, timeout=20) as client:
        client.ehlo("customer.test")
        for extension in ("size", "8bitmime", "pipelining", "enhancedstatuscodes", "smtputf8", "starttls"):
            assert client.has_extn(extension), extension
        assert client.esmtp_features["size"] == "20971520"
        assert not client.has_extn("auth")  # the relay port has no AUTH


def test_swaks_starttls_with_pipelining(stack: IngressStack, ingress: Ingress) -> None:
    result = swaks(stack, ingress.port, "--pipeline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "=== TLS started with cipher TLSv1.3" in result.stdout
    # MAIL, RCPT and DATA went out together, before any of their replies.
    assert " ~> MAIL FROM:<alice@sender.test>\n ~> RCPT TO:<bob@example.test>\n ~> DATA\n<~  250 " in result.stdout
    [(record, body)] = stack.queued()
    assert record.customer == "loopback"
    assert b"([127.0.0.1])\r\n\t(using TLSv1.3 with cipher " in body
    assert b"with ESMTPS id " + record.queue_id.encode() in body


def test_swaks_auth_on_the_submission_port(stack: IngressStack, ingress: Ingress) -> None:
    for mechanism in ("PLAIN", "LOGIN"):
        result = swaks(
            stack,
            ingress.submission_port,
            "--auth", mechanism,
            "--auth-user", SUBMISSION_USER,
            "--auth-password", SUBMISSION_PASSWORD,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "235 2.7.0 Authentication successful" in result.stdout
    messages = stack.queued()
    assert len(messages) == 2
    for record, body in messages:
        # The user's customer, whatever the client IP.
        assert record.customer == "roaming"
        assert b"with ESMTPSA id" in body


def test_swaks_wrong_password_is_refused(stack: IngressStack, ingress: Ingress) -> None:
    result = swaks(
        stack,
        ingress.submission_port,
        "--auth", "PLAIN",
        "--auth-user", SUBMISSION_USER,
        "--auth-password", "wrong",
    )  # fmt: skip
    assert result.returncode != 0
    assert "535 5.7.8 Authentication credentials invalid" in result.stdout
    assert stack.queued() == []


def test_submission_requires_tls_then_auth(ingress: Ingress, client_tls: ssl.SSLContext) -> None:
    with smtplib.SMTP("127.0.0.1", ingress.submission_port, timeout=20) as client:
        client.ehlo("laptop.test")
        assert not client.has_extn("auth")
        assert client.mail("alice@sender.test")[0] == 530
        assert client.docmd("AUTH", "PLAIN " + plain("foo", "bar"))[0] == 530
        client.starttls(context=client_tls)
        client.ehlo("laptop.test")
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        code, reply = client.mail("alice@sender.test")
        assert (code, reply[:5]) == (530, b"5.7.0")
        client.login(SUBMISSION_USER, SUBMISSION_PASSWORD)
        assert client.mail("alice@sender.test")[0] == 250
        # The customer's own limit now applies.
        assert client.rcpt("bob@example.test")[0] == 250
        code, reply = client.data(b"Subject: big\r\n\r\n" + b"x" * 990 + b"\r\n" + (b"y" * 998 + b"\r\n") * 1100)
        assert (code, reply[:5]) == (552, b"5.3.4"), reply


def test_failed_logins_are_slowed_then_refused(ingress: Ingress, client_tls: ssl.SSLContext) -> None:
    # A client IP of its own: being blocked must not disturb the other tests.
    source = "127.0.0.11"
    with smtplib.SMTP("127.0.0.1", ingress.submission_port, timeout=20, source_address=(source, 0)) as client:
        client.ehlo("guesser.test")
        client.starttls(context=client_tls)
        client.ehlo("guesser.test")
        delays = []
        for attempt in range(3):
            started = time.monotonic()
            code, reply = client.docmd("AUTH", "PLAIN " + plain(SUBMISSION_USER, f"guess {attempt}"))
            delays.append(time.monotonic() - started)
            assert (code, reply[:5]) == (535, b"5.7.8")
        # SMARTHOST_AUTH_FAILURE_DELAY=0.2s, growing with each failure.
        assert delays[2] >= 0.6 > delays[0] >= 0.2, delays
        code, reply = client.docmd("AUTH", "PLAIN " + plain(SUBMISSION_USER, SUBMISSION_PASSWORD))
        assert (code, reply[:5]) == (421, b"4.7.0")
    # Refused on a new connection too, even with the right password.
    with smtplib.SMTP("127.0.0.1", ingress.submission_port, timeout=20, source_address=(source, 0)) as client:
        client.starttls(context=client_tls)
        client.ehlo("guesser.test")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.login(SUBMISSION_USER, SUBMISSION_PASSWORD)


def test_renewed_certificate_is_served_without_restart(stack: IngressStack, tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(stack.cert_file, cert)
    shutil.copy(stack.key_file, key)
    ingress = stack.start_ingress(SMARTHOST_TLS_CERT=str(cert), SMARTHOST_TLS_KEY=str(key))

    def served_by(ca: trustme.CA) -> bool:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        try:
            with smtplib.SMTP("127.0.0.1", ingress.port, timeout=20) as client:
                client.starttls(context=context)
        except ssl.SSLCertVerificationError:
            return False
        return True

    assert served_by(stack.ca)
    renewed_ca = trustme.CA()
    renewed = renewed_ca.issue_cert(HOSTNAME, "127.0.0.1")
    # As a Secret volume update: new files swapped in, key first.
    renewed.private_key_pem.write_to_path(str(tmp_path / "new.key"))
    (tmp_path / "new.crt").write_bytes(b"".join(blob.bytes() for blob in renewed.cert_chain_pems))
    (tmp_path / "new.key").replace(key)
    (tmp_path / "new.crt").replace(cert)
    wait_until(lambda: served_by(renewed_ca), timeout=15, what="renewed certificate served")
    ingress.process.stop()
