-- t/milter/mt-stages.lua - every milter step reaches the chain with the
-- right data: the probe plugin (all hooks, no rule matching these names)
-- logs what each stage carried and what the plugin API showed then.
dofile(LIB)
clearlog()

local c = open()
mt.macro(c, SMFIC_CONNECT, "j", "mx.example", "{daemon_name}", "smtpd-test",
         "_", "client.example [192.0.2.7]")
check(mt.conninfo(c, "client.example", "192.0.2.7") == nil, "conninfo sent")
check(reply(c) == R_CONTINUE, "connect: continue")
check(logged("connect\taddr=192.0.2.7\tport="), "connect: client address")
check(logged("\tname=client.example\tfrontend=milter\tsa=yes"), "connect: name, front-end, sockaddr")
check(logged("macroj=mx.example\tmacro{daemon_name}=smtpd-test\tmacro_=client.example [192.0.2.7]"),
      "connect: macros j, {daemon_name}, _ through subm_macro")

check(mt.helo(c, "helo.example") == nil and reply(c) == R_CONTINUE, "helo: continue")
check(logged("helo\thelo=helo.example\tesmtp=1\tsession_helo=helo.example"), "helo: name")

mt.macro(c, SMFIC_MAIL, "i", "QID-A", "{auth_authen}", "alice", "{auth_type}", "PLAIN",
         "{auth_author}", "alice@example.com", "{tls_version}", "TLSv1.3",
         "{cipher}", "TLS_AES_256_GCM_SHA384", "{cert_subject}", "CN=alice")
check(mt.mailfrom(c, "<sender@example.com>", "SIZE=1234", "BODY=8BITMIME", "SMTPUTF8") == nil
      and reply(c) == R_CONTINUE, "mail: continue")
check(logged("tls\ttext=TLSv1.3\tversion=TLSv1.3\tcipher=TLS_AES_256_GCM_SHA384\tpeer=CN=alice"),
      "tls: stage from {tls_version} {cipher} {cert_subject}")
check(logged("auth\ttext=alice\tlogin=alice\tmech=PLAIN\tauthor=alice@example.com"),
      "auth: stage from {auth_authen} {auth_type} {auth_author}")
check(logged("mail\tfrom=sender@example.com\tparams=SIZE=1234,BODY=8BITMIME,SMTPUTF8\tsize_param=1234\tlogin=alice\ttls=TLSv1.3\thelo=helo.example\taddr=192.0.2.7\tqid=QID-A"),
      "mail: address without brackets, parameters, session facts, queue id")
check(string.find(readlog(), "tls\t.*auth\t.*mail\t") ~= nil, "tls and auth run just before mail")

mt.macro(c, SMFIC_RCPT, "i", "QID-A", "{rcpt_addr}", "one@example.net")
check(mt.rcptto(c, "<one@example.net>", "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;one@example.net") == nil
      and reply(c) == R_CONTINUE, "rcpt: continue")
check(logged("rcpt\tto=one@example.net\tparams=NOTIFY=SUCCESS,FAILURE,ORCPT=rfc822;one@example.net\tindex=0\tcount=0"),
      "rcpt: address, parameters, index")
mt.rcptto(c, "<two@example.net>")
check(logged("rcpt\tto=two@example.net\tparams=\tindex=1\tcount=1"), "rcpt: second recipient counts the first")

check(mt.data(c) == nil and reply(c) == R_CONTINUE, "data: continue")
check(logged("data\tqid=QID-A"), "data: stage runs, queue id known")

check(mt.header(c, "Subject", "hello\n\tfolded world") == nil and reply(c) == R_CONTINUE, "header: continue")
mt.header(c, "From", "Sender <sender@example.com>")
mt.header(c, "X-Empty", "")
local lead = mt.test_option(c, SMFIP_HDR_LEADSPC)
check(logged("header\tname=Subject\tvalue=hello\\tfolded world\traw=Subject: hello\\r\\n\\tfolded world"),
      "header: name, unfolded value, raw with CRLF folding (leadspc " .. tostring(lead) .. ")")
check(logged("header\tname=From\tvalue=Sender <sender@example.com>"), "header: second field")
check(logged("header\tname=X-Empty\tvalue=\t"), "header: empty value")

check(mt.eoh(c) == nil and reply(c) == R_CONTINUE, "eoh: continue")
check(logged("eoh\tnheaders=3"), "eoh: three fields recorded")

local body1 = "first line\r\n"
local body2 = "second line with \1 a control\r\n.leading dot\r\n"
check(mt.bodystring(c, body1) == nil and reply(c) == R_CONTINUE, "body: continue")
mt.bodystring(c, body2)
check(logged("body\tlen=12\tdata=first line\\r\\n"), "body: first chunk")
check(logged("body\tlen=" .. #body2 .. "\tdata=second line with \\x01 a control\\r\\n.leading dot\\r\\n"),
      "body: second chunk, control octet and dot kept")

check(mt.eom(c) == nil and reply(c) == R_CONTINUE, "eom: continue")
check(logged("eom\tfrom=sender@example.com\trcpts=one@example.net,two@example.net\tnheaders=3\tsubject=hello\\tfolded world"),
      "eom: envelope and headers")
check(logged("\tbodysize=" .. (#body1 + #body2) .. "\tbody=first line\\r\\nsecond line with \\x01"),
      "eom: the whole body readable")
check(logged("\tqid=QID-A\tlogin=alice"), "eom: queue id and login")
-- size: header fields with CRLF + blank line + body
local hsize = #"Subject: hello\r\n\tfolded world\r\n" + #"From: Sender <sender@example.com>\r\n" + #"X-Empty: \r\n"
check(logged("\tsize=" .. (hsize + 2 + #body1 + #body2) .. "\t"), "eom: message size", readlog())

-- a second message on the same connection: new transaction, TLS/AUTH once
clearlog()
mt.macro(c, SMFIC_MAIL, "i", "QID-B", "{auth_authen}", "alice", "{tls_version}", "TLSv1.3")
mt.mailfrom(c, "<>")
check(logged("mail\tfrom=\tparams=\t"), "second message: null sender")
check(not logged("tls\t") and not logged("auth\t"), "second message: tls and auth not run again")
mt.rcptto(c, "<three@example.net>")
mt.abort(c)
check(wait_logged("rset\t"), "abort: rset stage")
mt.macro(c, SMFIC_MAIL, "i", "QID-C")
mt.mailfrom(c, "<third@example.com>")
mt.rcptto(c, "<four@example.net>")
mt.header(c, "Subject", "third")
mt.header(c, "Bad Name", "a field name with a space")
check(reply(c) == R_CONTINUE and not logged("name=Bad Name"),
      "malformed header field: passed over, not given to plugins, no error")
mt.eoh(c)
mt.bodystring(c, "x\r\n")
mt.eom(c)
check(logged("eom\tfrom=third@example.com\trcpts=four@example.net\tnheaders=1"),
      "after abort: nothing of the aborted message is left")

-- a 1 KB header field and a 20-line folded one (miltertest 2.11 itself
-- crashes on fields of a few KB; the MTA tests send bigger ones)
clearlog()
mt.mailfrom(c, "<big@example.com>")
mt.rcptto(c, "<four@example.net>")
mt.header(c, "X-Big", string.rep("b", 1000))
check(reply(c) == R_CONTINUE and logged("header\tname=X-Big\tvalue=bbbb"), "1 KB header field")
mt.header(c, "X-Folded", string.rep("part\n\t", 20) .. "end")
check(reply(c) == R_CONTINUE and logged("header\tname=X-Folded\tvalue=part\\tpart\\tpart") and
      logged("\traw=X-Folded: part\\r\\n\\tpart\\r\\n\\tpart"),
      "20-line folded header field, unfolded")
mt.eoh(c)
mt.eom(c)
check(reply(c) == R_CONTINUE and logged("eom\tfrom=big@example.com\trcpts=four@example.net\tnheaders=2"),
      "big message: both fields recorded")

check(mt.unknown(c, "XYZZY plugh") == nil, "unknown sent")
check(logged("unknown\ttext=XYZZY plugh"), "unknown: command line")
mt.unknown(c, "EXPN staff")
check(logged("expn\ttext=staff"), "EXPN through unknown: expn stage with the argument")
mt.disconnect(c)
check(wait_logged("close\t"), "close: stage runs at disconnect")

-- IPv6 client, and a client of unknown family (address from macros)
clearlog()
c = open()
mt.conninfo(c, "v6.example", "2001:db8::25")
check(logged("connect\taddr=2001:db8::25\tport="), "connect: IPv6 address")
mt.disconnect(c)
clearlog()
c = open()
mt.macro(c, SMFIC_CONNECT, "{client_addr}", "198.51.100.9", "{client_port}", "4025")
mt.conninfo(c, "[198.51.100.9]", "unspec")
check(logged("connect\taddr=198.51.100.9\tport=4025\tname=unknown\tfrontend=milter\tsa=yes"),
      "connect: unknown family, address from {client_addr}; [addr] name is unknown",
      readlog())
mt.disconnect(c)
