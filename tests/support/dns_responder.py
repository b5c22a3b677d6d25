"""A DNS server on 127.0.0.1 that fails every query: SERVFAIL, or no answer at all.

dnsmasq forwards a test domain to it (`server=/servfail.test/127.0.0.1#port`)
to produce the two failures a resolver sees from a broken or dead upstream.
"""

import socket
import threading

import dns.message
import dns.rcode


class DnsResponder:
    def __init__(self, servfail: bool) -> None:
        self._servfail = servfail
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"dns-responder-{self.port}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            self.queries += 1
            if self._servfail:
                response = dns.message.make_response(dns.message.from_wire(data))
                response.set_rcode(dns.rcode.SERVFAIL)
                self._socket.sendto(response.to_wire(), peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()
