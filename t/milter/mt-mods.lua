-- t/milter/mt-mods.lua - every modification a plugin records is applied at
-- end of message with the matching smfi_* call. The probe's "eom:mods@"
-- rules (miltertest.sh) record one of each.
dofile(LIB)
clearlog()

local c = open()
mt.conninfo(c, "client.example", "192.0.2.7")
mt.helo(c, "client.example")
check(mt.test_action(c, SMFIF_ADDHDRS) and mt.test_action(c, SMFIF_CHGHDRS) and
      mt.test_action(c, SMFIF_CHGBODY) and mt.test_action(c, SMFIF_ADDRCPT) and
      mt.test_action(c, SMFIF_ADDRCPT_PAR) and mt.test_action(c, SMFIF_DELRCPT) and
      mt.test_action(c, SMFIF_CHGFROM) and mt.test_action(c, SMFIF_SETSYMLIST),
      "negotiation: every modification action asked for")
check(not mt.test_action(c, SMFIF_QUARANTINE), "negotiation: quarantine not asked for")
-- with SMFIP_HDR_LEADSPC the MTA adds no space after the colon: we do
local sp = ""
if mt.test_option(c, SMFIP_HDR_LEADSPC) then sp = " " end

msg(c, "<mods@example.com>", { "<old@example.net>", "<kept@example.net>" },
    { { "Subject", "original" }, { "X-Remove", "me" } }, "old body\r\n")
check(reply(c) == R_CONTINUE, "eom with modifications: continue")
check(mt.eom_check(c, MT_HDRADD, "X-Added", sp .. "one"), "add header")
check(mt.eom_check(c, MT_HDRADD, "X-Folded", sp .. "first\n\tsecond"),
      "add header: CRLF folding sent as LF folding")
check(mt.eom_check(c, MT_HDRINSERT, "X-Inserted", sp .. "top", 0), "insert header at index 0")
check(mt.eom_check(c, MT_HDRCHANGE, "Subject", sp .. "changed subject"), "change header")
check(mt.eom_check(c, MT_HDRDELETE, "X-Remove"), "delete header")
check(mt.eom_check(c, MT_RCPTADD, "<added@example.org>"), "add recipient")
-- (smfi_addrcpt_par, SMFIR_ADDRCPT_PAR, is not recorded by miltertest; the
-- Postfix test checks it)
check(mt.eom_check(c, MT_RCPTDELETE, "<old@example.net>"), "delete recipient")
check(mt.eom_check(c, MT_BODYCHANGE, "new body\r\n"), "replace body")
check(not mt.eom_check(c, MT_HDRADD, "X-Probe"), "nothing else added")
check(logged("eom\tfrom=mods@example.com\trcpts=old@example.net,kept@example.net"),
      "the chain saw the message as received")

-- a message without modification rules gets none
msg(c, "<plain@example.com>", { "<a@example.net>" }, { { "Subject", "x" } }, "x\r\n")
check(reply(c) == R_CONTINUE and not mt.eom_check(c, MT_HDRADD) and
      not mt.eom_check(c, MT_BODYCHANGE), "no rules: no modifications")
mt.disconnect(c)

-- an MTA that does not allow a modification the chain made: the message is
-- deferred rather than delivered without it. (miltertest's mt.negotiate
-- takes the protocol steps before the actions, unlike its manual says.)
c = open()
check(mt.negotiate(c, 6, 0x1fffff, SMFIF_ADDHDRS + SMFIF_SETSYMLIST) == nil,
      "negotiate with an MTA that only allows adding headers")
mt.conninfo(c, "client.example", "192.0.2.7")
msg(c, "<mods@example.com>", { "<old@example.net>" }, { { "Subject", "x" }, { "X-Remove", "me" } }, "x\r\n")
check(reply(c) == R_REPLYCODE and mt.eom_check(c, MT_SMTPREPLY, "451", "4.3.0",
      "Local error in processing, try again later"),
      "modification the MTA does not allow: 451 4.3.0, not a silent loss")
mt.disconnect(c)
