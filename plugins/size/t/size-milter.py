#!/usr/bin/python3
"""size-milter.py - the size plugin behind the daemon's milter front-end.

Starts the daemon with a milter {} block and plugin size { limit = 10K },
then plays the MTA with miltertest (size-milter.lua): SIZE= over the limit
and absurdly long refused at MAIL, a lying SIZE= and a missing one refused
once the body passes the limit, a small message accepted. The daemon's log
must show the 552 5.3.4 replies the MTA was given. Ports 22300-22399.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.get("top_srcdir", os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "plugins", "vrfy", "t"))
import policytest as pt  # noqa: E402

pt.milter_suite("size-milter", 22300, 22399, "plugin size { limit = 10K }",
                os.path.join(TOP, "plugins", "size", "t", "size-milter.lua"), [
                    ("log: 552 5.3.4 at MAIL", "mail: reject: 552 5.3.4"),
                    ("log: the lie caught on octets received", "(SIZE=100)"),
                    ("log: refused without SIZE= too", "(SIZE=none)")])
