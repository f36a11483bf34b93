#!/usr/bin/python3
"""spf-dns.py - the spf plugin through the system resolver (res_query, as in
production) against a DNS server of our own on 127.0.0.1:53, in a private
network namespace with a private /etc/resolv.conf (see nstest.py): results,
the TCP fallback for long records, the RFC 7208 lookup limits, SERVFAIL as
temperror, the cache (no second query), and the deadline: a DNS server that
never answers gives 451 4.4.3 at plugin_timeout although the resolver alone
would wait 10 s. Prints "N passed, M failed"; exit 77 (skip) without
namespaces.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nstest  # noqa: E402

# Resolver alone: 5 s x 2 attempts. The plugin's deadline must cut it short.
tmp = nstest.enter_namespace("timeout:5 attempts:2")
T = nstest.Tally()

LONG = "v=spf1 " + " ".join("ip4:198.51.100.%d" % i for i in range(1, 40)) + " ip4:192.0.2.1 -all"
includes = " ".join("include:i%d.example" % i for i in range(1, 12))
ZONE = {
    "pass.example": [["TXT", "v=spf1 ip4:192.0.2.0/24 -all"]],
    "fail.example": [["TXT", "v=spf1 -all"]],
    "soft.example": [["TXT", "v=spf1 ~all"]],
    "broken.example": [["TXT", "v=spf1 foo:bar -all"]],
    "servfail.example": ["SERVFAIL"],
    "slow.example": ["TIMEOUT"],
    "mx.example": [["TXT", "v=spf1 mx -all"], ["MX", [10, "mail.mx.example"]]],
    "mail.mx.example": [["A", "192.0.2.1"]],
    "helo.example": [["TXT", "v=spf1 ip4:192.0.2.1 -all"]],
    "v6.example": [["TXT", "v=spf1 ip6:2001:db8::/32 -all"]],
    # Over 512 octets: only TCP carries it.
    "long.example": [["TXT", [LONG[i:i + 200] for i in range(0, len(LONG), 200)]]],
    "incs.example": [["TXT", "v=spf1 %s -all" % includes]],
    "voids.example": [["TXT", "v=spf1 a:v1.example a:v2.example a:v3.example "
                               "ip4:192.0.2.0/24 -all"]],
    "cname.example": [["CNAME", "pass.example"]],
}
for i in range(1, 12):
    ZONE["i%d.example" % i] = [["TXT", "v=spf1 -all" if i < 11 else "v=spf1 ip4:192.0.2.1 -all"]]

dns = nstest.DNS(tmp, ZONE)
CONF = 'plugin_timeout = 1500ms\nplugin spf { authserv_id = "mx.test" %s }\n'

try:
    cases = [
        ("pass", ("192.0.2.1", "c.example", "u@pass.example"), 0, "pass"),
        ("fail", ("192.0.2.1", "c.example", "u@fail.example"), 550, None),
        ("softfail", ("192.0.2.1", "c.example", "u@soft.example"), 0, "softfail"),
        ("no record", ("192.0.2.1", "c.example", "u@nothing.example"), 0, "none"),
        ("syntax error", ("192.0.2.1", "c.example", "u@broken.example"), 0, "permerror"),
        ("SERVFAIL", ("192.0.2.1", "c.example", "u@servfail.example"), 0, "temperror"),
        ("mx", ("192.0.2.1", "c.example", "u@mx.example"), 0, "pass"),
        ("long record over TCP", ("192.0.2.1", "c.example", "u@long.example"), 0, "pass"),
        ("eleven includes", ("192.0.2.1", "c.example", "u@incs.example"), 0, "permerror"),
        ("three void lookups", ("192.0.2.1", "c.example", "u@voids.example"), 0, "permerror"),
        ("null sender: helo", ("192.0.2.1", "helo.example", ""), 0, "pass"),
        ("null sender: helo fail", ("192.0.2.9", "helo.example", ""), 550, None),
        ("ipv6 pass", ("2001:db8::7", "c.example", "u@v6.example"), 0, "pass"),
        ("ipv6 fail", ("2001:db9::7", "c.example", "u@v6.example"), 550, None),
    ]
    res = nstest.spfrun(CONF % "", [c[1] for c in cases], tmp)
    for (label, _, code, result), r in zip(cases, res):
        if code:
            T.check(label, r["code"] == code and r["ecode"] == "5.7.23", r)
        else:
            T.check(label, r["verdict"] == 0 and r["result"] == result, r)

    # The cache: the second identical check asks the DNS nothing.
    before = len(dns.queries())
    res = nstest.spfrun(CONF % "", [("192.0.2.1", "c.example", "u@mx.example"),
                                    ("=", "c.example", "u@mx.example")], tmp)
    asked = dns.queries()[before:]
    T.check("cache: both pass", [r["result"] for r in res] == ["pass", "pass"], res)
    T.check("cache: the second check made no query",
            len(asked) > 0 and len(asked) == len(set(asked)), "queries: %s" % asked)

    # The deadline: the server drops every query for slow.example.
    t0 = time.time()
    res = nstest.spfrun(CONF % "", [("192.0.2.1", "c.example", "u@slow.example")], tmp)
    took = time.time() - t0
    r = res[0]
    T.check("no answer: 451 4.4.3", r["code"] == 451 and r["ecode"] == "4.4.3", r)
    T.check("no answer: MAIL took about plugin_timeout (1.5 s)", 1300 <= r["ms"] <= 2500,
            "%d ms" % r["ms"])
    T.check("no answer: the process ended without waiting for the resolver (10 s)",
            took < 5, "%.1f s" % took)

    # temperror policy through the real resolver.
    res = nstest.spfrun(CONF % "temperror = tempfail",
                        [("192.0.2.1", "c.example", "u@servfail.example")], tmp)
    T.check("SERVFAIL with temperror = tempfail: 451 4.7.24",
            res[0]["code"] == 451 and res[0]["ecode"] == "4.7.24", res[0])
finally:
    dns.stop()
    nstest.cleanup(tmp)
sys.exit(T.finish())
