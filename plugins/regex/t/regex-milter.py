#!/usr/bin/python3
"""regex-milter.py - the regex plugin behind the daemon's milter front-end.

Writes a rules file, starts the daemon with a milter {} block, and plays
the MTA with miltertest (regex-milter.lua): connect, helo, auth (the
{auth_authen} macro at MAIL), mail, rcpt, header and body rules; discard;
headers added from captures and from a connect rule (checked with
mt.eom_check); a body line split across chunks; a runaway pattern answered
451 4.3.0 by the match limit. The daemon's log must show the replies the
MTA was given. Ports 22600-22899.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.get("top_srcdir", os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "plugins", "vrfy", "t"))
import policytest as pt  # noqa: E402

RULES = r"""# regex-milter.py
connect /^unknown\[/                   reject 554 5.7.1 no reverse name for ${0}
connect /^(?<n>[^[]+)\[192\.0\.2\.1\]$/ add-header X-Regex-Client: ${n}
helo    /^evil\.(?<rest>.+)$/i         reject 550 5.7.1 HELO evil.${rest} refused
auth    /^guest$/                      reject 535 5.7.8 guest logins are off
mail    /@spam\.example$/              reject 550 5.7.1 sender $0 refused
rcpt    /^(?<who>blocked)@/            reject 550 5.7.1 no mail for ${who}
header  /^Subject:.*\bviagra\b/i       discard
header  /^X-Mailer: (?<m>.+)$/         add-header "X-Regex-Mailer: ${m}"
body    /^click here$/i                reject 550 5.7.1 body refused
body    /^(a+)+$/                      reject 550 5.7.1 never reached
"""

WANTS = ("554 5.7.1 no reverse name for unknown[", "550 5.7.1 HELO evil.example.net refused",
         "535 5.7.8 guest logins are off", "550 5.7.1 sender @spam.example refused",
         "550 5.7.1 no mail for blocked", "550 5.7.1 body refused",
         "match limit exceeded", "451 4.3.0")


def plugins(env):
    rules = env.write("regex.rules", RULES)
    return 'plugin regex { rules = "%s" match_limit = 10000 }' % rules


pt.milter_suite("regex-milter", 22600, 22899, plugins,
                os.path.join(TOP, "plugins", "regex", "t", "regex-milter.lua"),
                [("log: %s" % want, want) for want in WANTS])
