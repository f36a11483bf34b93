#!/usr/bin/python3
"""vrfy-milter.py - the vrfy plugin behind the daemon's milter front-end.

Only EXPN can get there (Postfix passes it as an unknown command; VRFY and
HELP never reach a milter): with expn = reject and reject_code = 550 the
MTA must be given 550 5.7.1 (vrfy-milter.lua plays the MTA with
miltertest; the daemon's log shows the reply). Ports 22000-22299.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.get("top_srcdir", os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "plugins", "vrfy", "t"))
import policytest as pt  # noqa: E402

pt.milter_suite("vrfy-milter", 22000, 22299, "plugin vrfy { expn = reject reject_code = 550 }",
                os.path.join(TOP, "plugins", "vrfy", "t", "vrfy-milter.lua"), [
                    ("log: 550 5.7.1 EXPN refused by policy",
                     "expn: reject: 550 5.7.1 EXPN refused by policy")])
