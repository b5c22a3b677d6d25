"""The open-relay address forms: the domain checked is the domain queued, or the address is refused.

From a customer, `%` and `!` are plain local-part characters (delivered to
the domain after the `@`), source routes are stripped, and the forms that
name a second destination are refused with 553 5.1.3. From a stranger,
nothing is relayed whatever the form.
"""

import pytest
from support.ingress_stack import STRANGER, Ingress, IngressStack
from support.smtp_wire import Wire

# (RCPT TO path, the recipient queued, or None when refused with 553 5.1.3)
FORMS = [
    ("<u%other.test@example.test>", "u%other.test@example.test"),
    ('<"u@other.test"@example.test>', None),
    ("<@example.test:u@other.test>", "u@other.test"),
    ("<@a.test,@b.test:u@other.test>", "u@other.test"),
    ("<other.test!u>", None),
    ("<other.test!u@example.test>", "other.test!u@example.test"),
    ("<u@other.test@example.test>", None),
    ("<u@[127.0.0.1]>", None),
    ("<u@[IPv6:::1]>", None),
    ('<"u\\@other.test"@example.test>', None),
]


@pytest.mark.parametrize(("path", "queued_as"), FORMS, ids=[form for form, _ in FORMS])
def test_relay_forms_from_a_customer(stack: IngressStack, ingress: Ingress, path: str, queued_as: str | None) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        assert wire.command("EHLO customer.test").code == 250
        assert wire.command("MAIL FROM:<alice@sender.test>").code == 250
        reply = wire.command(f"RCPT TO:{path}")
        if queued_as is None:
            assert (reply.code, reply.enhanced) == (553, b"5.1.3"), reply
            assert wire.command("DATA").code == 503
            return
        assert reply.code == 250, reply
        assert wire.command("DATA").code == 354
        assert wire.command(b"Subject: relay form\r\n\r\nbody\r\n.").code == 250
    [(record, _)] = stack.queued()
    assert [recipient.address for recipient in record.recipients] == [queued_as]


@pytest.mark.parametrize(("path", "queued_as"), FORMS, ids=[form for form, _ in FORMS])
def test_relay_forms_from_a_stranger(stack: IngressStack, ingress: Ingress, path: str, queued_as: str | None) -> None:
    with Wire("127.0.0.1", ingress.port, source=STRANGER) as wire:
        wire.greeting()
        assert wire.command("EHLO stranger.test").code == 250
        mail = wire.command("MAIL FROM:<mallory@sender.test>")
        assert (mail.code, mail.enhanced) == (554, b"5.7.1"), mail
        rcpt = wire.command(f"RCPT TO:{path}")
        assert rcpt.code in (503, 553), rcpt
        assert wire.command("DATA").code == 503
    assert stack.queued() == []


@pytest.mark.parametrize(
    ("path", "reply"),
    [
        ("<alice@[192.0.2.1]>", b"5.1.3"),
        ('<"alice@other.test"@sender.test>', b"5.1.3"),
        ("<alice@sender.test@other.test>", b"5.1.3"),
    ],
)
def test_sender_forms_are_refused_too(ingress: Ingress, path: str, reply: bytes) -> None:
    with Wire("127.0.0.1", ingress.port) as wire:
        wire.greeting()
        assert wire.command("EHLO customer.test").code == 250
        answer = wire.command(f"MAIL FROM:{path}")
        assert (answer.code, answer.enhanced) == (553, reply), answer
