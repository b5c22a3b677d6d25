import pytest
from hypothesis import given
from hypothesis import strategies as st

from smarthost_ingress.addresses import AddressError, parse_path


@pytest.mark.parametrize(
    ("argument", "address", "domain"),
    [
        ("FROM:<alice@sender.test>", "alice@sender.test", "sender.test"),
        ("FROM: <alice@sender.test>", "alice@sender.test", "sender.test"),
        ("from:<>", "", ""),
        ("FROM:<u%d@relay.test>", "u%d@relay.test", "relay.test"),
        ("FROM:<d!u@relay.test>", "d!u@relay.test", "relay.test"),
        ("FROM:<@a.test,@b.test:u@c.test>", "u@c.test", "c.test"),
        ('FROM:<"john doe"@example.test>', '"john doe"@example.test', "example.test"),
        ('FROM:<"a\\"b"@example.test>', '"a\\"b"@example.test', "example.test"),
        ("FROM:<jöhn@bücher.test>", "jöhn@bücher.test", "bücher.test"),
    ],
)
def test_valid_paths(argument: str, address: str, domain: str) -> None:
    path = parse_path(argument, keyword="FROM", null_allowed=True)
    assert (path.address, path.domain) == (address, domain)


@pytest.mark.parametrize(
    ("argument", "reply"),
    [
        ("TO:<u@[127.0.0.1]>", "553 5.1.3 Address literals"),
        ('TO:<"u@d"@relay.test>', "553 5.1.3 Quoted local parts containing @"),
        ('TO:<"u\\@d"@relay.test>', "553 5.1.3 Quoted local parts containing @"),
        ("TO:<u@d@relay.test>", "553 5.1.3 Malformed"),
        ("TO:<d!u>", "553 5.1.3 Malformed"),
        ("TO:<Postmaster>", "553 5.1.3 Malformed"),
        ("TO:<>", "553 5.1.3 The null address"),
        ("TO:<a@b.test", "553 5.1.3 Malformed address: unbalanced"),
        ("TO:a@b.test", "501 5.5.4"),
        ("FROM:<a@b.test>", "501 5.5.4"),
        ("TO:<a@b.test>x", "501 5.5.4"),
        ("TO:<a@-b.test>", "553 5.1.3 Malformed"),
        ("TO:<a@b..test>", "553 5.1.3 Malformed"),
        ("TO:<a\x00@b.test>", "553 5.1.3 Malformed"),
        ("TO:<a\udcff@b.test>", "553 5.1.3 Malformed"),
        ("TO:<a@" + "b" * 64 + ".test>", "553 5.1.3 Domain name too long"),
        ("TO:<" + "a" * 250 + "@b.test>", "553 5.1.3 Address longer"),
        ("TO:<a@b.test> =x", "501 5.5.4 Malformed parameter"),
    ],
)
def test_refused_paths(argument: str, reply: str) -> None:
    with pytest.raises(AddressError) as refused:
        parse_path(argument, keyword="TO", null_allowed=False)
    assert refused.value.reply.startswith(reply)


def test_parameters_are_keyed_upper_case() -> None:
    path = parse_path("FROM:<a@b.test> size=10 BODY=8BITMIME SMTPUTF8", keyword="FROM", null_allowed=True)
    assert path.params == {"SIZE": "10", "BODY": "8BITMIME", "SMTPUTF8": None}


@given(st.text(max_size=120))
def test_any_argument_is_parsed_or_refused_with_a_reply(text: str) -> None:
    try:
        path = parse_path("TO:" + text, keyword="TO", null_allowed=False)
    except AddressError as error:
        assert error.reply[:3] in ("501", "553")
        return
    # What is accepted names exactly one destination: the domain after the one @ outside quotes.
    local, _, domain = path.address.rpartition("@")
    assert domain == path.domain and domain and not domain.startswith("[")
    assert "@" not in local and not any(char in path.address for char in "\r\n\x00<>")
