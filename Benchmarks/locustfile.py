# Locust's view of a KX-UTG300 boot: one simulated phone = one flow of four GETs (initial file, then the standard,
# product and master files it names), each on a fresh connection, as the phone does (quirk reuseConnection=off).
#
# Used by scripts/bench-fleet; runnable alone:
#   BENCH_MACS=10000 locust -f Benchmarks/locustfile.py --headless -u 200 -r 200 -t 20s \
#       --host http://127.0.0.1:18780 --processes 2
# Environment: BENCH_MACS (standard files exist for MACs 0080F0000001 + 0..BENCH_MACS-1),
# BENCH_CA (PEM to verify HTTPS with; verification is on, as on the phone).
#
# A completed flow is reported as a pseudo-request of type FLOW named "phone", so Locust's own statistics count
# phones per second next to requests per second.

import itertools
import os
import random
import re
import time

import gevent.ssl
from locust import FastHttpUser, constant, task

MACS = int(os.environ.get("BENCH_MACS", "1000"))
CA = os.environ.get("BENCH_CA")
MAC_BASE = 0x0080F0000001
MODEL = "KX-UTG300"
PATHS = re.compile(rb"<(CFG_STANDARD_FILE_PATH|CFG_PRODUCT_FILE_PATH|CFG_MASTER_FILE_PATH)>([^<]*)<")
# Every process starts somewhere else in the MAC range, so two worker processes do not replay the same phones.
_next = itertools.count(random.randrange(MACS))


def _verified_context(cafile=None):
    return gevent.ssl.create_default_context(cafile=CA or cafile)


class Phone(FastHttpUser):
    wait_time = constant(0)
    # Verify the server as the phone does (Locust's default is no verification).
    insecure = CA is None
    ssl_context_factory = _verified_context if CA else None

    @task
    def boot(self):
        n = next(_next) % MACS
        mac = f"{MAC_BASE + n:012X}"
        headers = {"Connection": "close", "User-Agent": f"Panasonic_{MODEL}/03.210 ({mac.lower()})"}
        start = time.perf_counter()
        with self.client.get(f"/{MODEL}.cfg", headers=headers, name="initial", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"initial: HTTP {r.status_code}")
                return
            found = dict(PATHS.findall(r.content))
        urls = []
        for key, name in (
            (b"CFG_STANDARD_FILE_PATH", "standard"),
            (b"CFG_PRODUCT_FILE_PATH", "product"),
            (b"CFG_MASTER_FILE_PATH", "master"),
        ):
            url = found.get(key, b"").decode().replace("{MAC}", mac).replace("{MODEL}", MODEL)
            urls.append((url, name))
        for url, name in urls:
            with self.client.get(url, headers=headers, name=name, catch_response=True) as r:
                if r.status_code != 200 or b"<PANASIPPhoneConfig>" not in r.content:
                    r.failure(f"{name}: HTTP {r.status_code}")
                    return
        self.environment.events.request.fire(
            request_type="FLOW",
            name="phone",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=None,
            context={},
        )
