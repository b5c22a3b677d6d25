"""`smarthostctl dkim keygen` writes a key and its record; `dkim check` finds that record in DNS."""

import json
import stat
import subprocess
from pathlib import Path

from support.dns_server import DnsServer, txt
from support.ports import free_port
from support.processes import ProcessGroup
from support.relay import BIN


def ctl(*args: str, dns: str = "127.0.0.1:1") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "smarthostctl"), *args],
        env={"SMARTHOST_DNS_SERVERS": dns, "SMARTHOST_DNS_TIMEOUT": "3s", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def keygen(tmp_path: Path, selector: str, *flags: str) -> tuple[Path, str, list[str]]:
    """The key file, the record's name and its TXT strings."""
    out = tmp_path / f"{selector}.pem"
    made = ctl("dkim", "keygen", "Acme.Test", selector, "--out", str(out), "--json", *flags)
    assert made.returncode == 0, made
    record = json.loads(made.stdout)
    assert record["key_file"] == str(out)
    return out, record["name"], record["strings"]


def test_keygen_then_check_round_trip(processes: ProcessGroup, tmp_path: Path) -> None:
    rsa_file, rsa_name, rsa_strings = keygen(tmp_path, "s2026")
    ed_file, ed_name, ed_strings = keygen(tmp_path, "ed2026", "--type", "ed25519")
    other_file, other_name, _ = keygen(tmp_path, "old")
    assert stat.S_IMODE(rsa_file.stat().st_mode) == stat.S_IMODE(ed_file.stat().st_mode) == 0o600
    assert rsa_name == "s2026._domainkey.acme.test"
    # A 2048-bit RSA key's record takes two TXT strings, an Ed25519 key's one.
    assert [len(part.encode()) for part in rsa_strings] == [255, len(rsa_strings[1])]
    assert rsa_strings[0].startswith("v=DKIM1; k=rsa; p=MII")
    assert len(ed_strings) == 1 and ed_strings[0].startswith("v=DKIM1; k=ed25519; p=")
    # The zone: both new keys published; `old` publishes another key than the file's.
    published = [txt(rsa_name, rsa_strings), txt(ed_name, ed_strings), txt(other_name, rsa_strings)]
    dns = DnsServer(processes, tmp_path, published, free_port()).address

    matched = ctl("dkim", "check", "acme.test", "s2026", "--key", str(rsa_file), dns=dns)
    assert (matched.returncode, matched.stdout) == (0, "s2026._domainkey.acme.test: match (rsa)\n"), matched
    assert ctl("dkim", "check", "acme.test", "ed2026", "--key", str(ed_file), dns=dns).returncode == 0

    wrong = ctl("dkim", "check", "acme.test", "old", "--key", str(other_file), dns=dns)
    assert (wrong.returncode, wrong.stdout) == (
        1,
        "old._domainkey.acme.test: mismatch: the record publishes a different key\n",
    )
    kind = ctl("dkim", "check", "acme.test", "ed2026", "--key", str(rsa_file), dns=dns)
    assert kind.returncode == 1 and "the record is for k=ed25519 keys" in kind.stdout
    missing = ctl("--json", "dkim", "check", "acme.test", "s2027", "--key", str(rsa_file), dns=dns)
    assert missing.returncode == 1
    assert json.loads(missing.stdout) == {
        "name": "s2027._domainkey.acme.test",
        "match": False,
        "problem": "no TXT record published",
    }


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    key, _, _ = keygen(tmp_path, "s1", "--type", "ed25519")
    again = ctl("dkim", "keygen", "acme.test", "s1", "--out", str(key))
    assert again.returncode == 2 and "File exists" in again.stderr
    assert ctl("dkim", "keygen", "acme.test", "s.1").returncode == 2
    assert ctl("dkim", "keygen", "acme.test", "s1", "--bits", "512", "--out", str(tmp_path / "x.pem")).returncode == 2
    assert "not a fully qualified" in ctl("dkim", "check", "acme", "s1", "--key", str(key)).stderr
    assert ctl("dkim", "check", "acme.test", "s1").returncode == 2
    unreadable = ctl("dkim", "check", "acme.test", "s1", "--key", str(tmp_path / "none.pem"))
    assert unreadable.returncode == 2
    assert f"--key: DKIM key of acme.test: {tmp_path / 'none.pem'}: No such file or directory" in unreadable.stderr
