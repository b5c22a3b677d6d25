"""Misconfiguration stops the ingress at start-up, naming the setting."""

import subprocess
from pathlib import Path

import pytest
from support.relay import BIN


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"SMARTHOST_TLS_CERT": "/nonexistent/tls.crt", "SMARTHOST_TLS_KEY": "/nonexistent/tls.key"},
            "SMARTHOST_TLS_CERT",
        ),
        ({"SMARTHOST_TLS_CERT": "{garbage}"}, "SMARTHOST_TLS_KEY"),
        ({"SMARTHOST_TLS_CERT": "{garbage}", "SMARTHOST_TLS_KEY": "{garbage}"}, "SMARTHOST_TLS_CERT"),
        ({"SMARTHOST_SUBMISSION_LISTEN": "127.0.0.1:0"}, "SMARTHOST_SUBMISSION_LISTEN"),
        ({"SMARTHOST_PROXY_TRUSTED": "10.0.0.1/8"}, "SMARTHOST_PROXY_TRUSTED"),
        ({"SMARTHOST_PROXY_TRUSTED": "10.0.0.0/8,load-balancer"}, "SMARTHOST_PROXY_TRUSTED"),
        ({"SMARTHOST_MAX_CONNECTIONS": "0"}, "SMARTHOST_MAX_CONNECTIONS"),
        ({"SMARTHOST_DATA_TIMEOUT": "soon"}, "SMARTHOST_DATA_TIMEOUT"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, env: dict[str, str], named: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    result = subprocess.run(
        [str(BIN / "smarthost-ingress")],
        env={
            "PATH": "/usr/bin:/bin",
            "SMARTHOST_SMTP_LISTEN": "127.0.0.1:0",
            "SMARTHOST_METRICS_LISTEN": "127.0.0.1:0",
            **{key: value.replace("{garbage}", str(garbage)) for key, value in env.items()},
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"configuration error: {named}" in result.stderr, result.stderr
