"""DKIM signatures on the queued copy of a message, with the keys the policy hands over on accept.

Signing once, here, before the enqueue means every retry and every delivery
replica sends the same signed bytes. The policy sends the keys' bytes with
each accept; a key is parsed once and kept by its domain, selector and hash.
A signing failure never costs the message: it is queued unsigned.
"""

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence

from smarthost.policy.v1 import policy_pb2 as pb

from smarthost_common.dkim import DkimKey, from_domain, key_from_bytes, sign
from smarthost_ingress.metrics import DKIM_SIGNATURES

log = logging.getLogger("smarthost.ingress")

# A From: field with its continuation lines, in a header whose lines end in CRLF.
_FROM_FIELD = re.compile(rb"^from[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)
# Larger messages are signed on a thread, one at a time: 20 MiB takes over a second of CPU,
# which would stop every other session of this process for as long, and twice its size in
# copies while canonicalized, which the DATA memory budget does not count.
INLINE_MAX = 256 * 1024
# Parsed keys kept; far more than the selectors in use, and a bound should a policy churn through keys.
KEYS_KEPT = 256

_SIGNED = DKIM_SIGNATURES.labels(result="signed")
_UNSIGNED = DKIM_SIGNATURES.labels(result="unsigned")
_ERROR = DKIM_SIGNATURES.labels(result="error")


def from_header_domain(content: bytearray) -> str:
    """The domain of the one address the From: header names, as the signer sees it; "" for none or several."""
    end = content.find(b"\r\n\r\n")
    header = content[: end + 2] if end >= 0 else content
    return from_domain(_FROM_FIELD.findall(header)) or ""


class Signer:
    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, bytes], DkimKey] = {}
        self._large = asyncio.Semaphore(1)

    async def sign(self, queue_id: str, content: bytearray, keys: Sequence[pb.DkimKey]) -> tuple[bytes, str]:
        """The DKIM-Signature header(s) to prepend, and the signatures as the log names them (`domain/selector`).

        (b"", "") when the message is not signed: no keys, a From: domain none
        of them is for, or an error (logged and counted; the message is queued as it is).
        """
        if not keys:
            _UNSIGNED.inc()
            return b"", ""
        try:
            parsed = [self._key(key) for key in keys]
            if len(content) > INLINE_MAX:
                async with self._large:
                    header = await asyncio.to_thread(sign, content, parsed)
            else:
                header = sign(content, parsed)
        except Exception as exc:
            _ERROR.inc()
            log.warning("DKIM signing failed, queued unsigned", extra={"queue_id": queue_id, "error": repr(exc)})
            return b"", ""
        if header is None:
            _UNSIGNED.inc()
            return b"", ""
        _SIGNED.inc()
        return header, ",".join(f"{key.domain}/{key.selector}" for key in parsed)

    def _key(self, key: pb.DkimKey) -> DkimKey:
        cache_key = (key.domain, key.selector, hashlib.sha256(key.private_key).digest())
        parsed = self._keys.get(cache_key)
        if parsed is None:
            if len(self._keys) >= KEYS_KEPT:
                self._keys.clear()
            parsed = self._keys[cache_key] = key_from_bytes(key.domain, key.selector, key.private_key)
        return parsed
