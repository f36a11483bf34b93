/*
 * check_dkim.c - Check tests of the dkim plugin through the fake host.
 * Keys are made at test time with OpenSSL (RSA 2048 and Ed25519) and
 * published in a test_keys file, so nothing touches the network: messages
 * are signed by one host (an internal client) and verified by another (an
 * outside client, verify = yes). Also: key choice by sign table, who gets
 * signed, our corrections of libopendkim (missing key vs DNS failure, k=
 * vs a=), forged Authentication-Results, and refused configurations.
 */
#include <sys/stat.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "subm_test.h"

static char dir[64];
static char conf_sign[1024], conf_verify[1024];

/* b64 - base64 of len octets into a static-free malloc'd string */
static char *b64(const unsigned char *data, int len)
{
    char *out = malloc((size_t)(4 * ((len + 2) / 3) + 1));

    ck_assert_ptr_nonnull(out);
    EVP_EncodeBlock((unsigned char *)out, data, len);
    return out;
}

/* write_file - text into dir/name with mode */
static void write_file(const char *name, const char *text, mode_t mode)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
    chmod(path, mode);
}

/* make_key - a key pair: private PEM in dir/name, public p= value returned */
static char *make_key(const char *type, const char *name)
{
    EVP_PKEY *k = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                            : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char path[256];
    FILE *fp;
    unsigned char raw[64], *der = NULL;
    size_t rawlen = sizeof(raw);
    char *p;
    int len;

    ck_assert_ptr_nonnull(k);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    chmod(path, 0600);
    ck_assert_int_eq(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
    if (strcmp(type, "RSA") == 0) {
        len = i2d_PUBKEY(k, &der);
        ck_assert_int_gt(len, 0);
        p = b64(der, len);
        OPENSSL_free(der);
    } else {
        /* RFC 8463: the raw 32-octet public key. */
        ck_assert_int_eq(EVP_PKEY_get_raw_public_key(k, raw, &rawlen), 1);
        p = b64(raw, (int)rawlen);
    }
    EVP_PKEY_free(k);
    return p;
}

/* keys_setup - keys, sign table and key records, once for all tests */
static void keys_setup(void)
{
    char *rsa, *ed, table[4096], keys[8192];

    snprintf(dir, sizeof(dir), "/tmp/check_dkim.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    rsa = make_key("RSA", "rsa.pem");
    ed = make_key("ED25519", "ed.pem");
    snprintf(table, sizeof(table),
             "# pattern         domain          selector  key\n"
             "*@example.com     example.com     rsa1      %s/rsa.pem\n"
             "ed.example        ed.example      ed1       %s/ed.pem\n"
             "*@dual.example    dual.example    rsa1      %s/rsa.pem\n"
             "*@dual.example    dual.example    ed1       %s/ed.pem\n"
             "alice@other.example other.example rsa1      %s/rsa.pem\n"
             "*.sub.example     sub.example     rsa1      %s/rsa.pem\n"
             "*@mis.example     mis.example     edmis     %s/ed.pem\n"
             "*@nokey.example   nokey.example   gone      %s/rsa.pem\n"
             "*@temp.example    temp.example    tempsel   %s/rsa.pem\n",
             dir, dir, dir, dir, dir, dir, dir, dir, dir);
    write_file("sign.table", table, 0644);
    snprintf(table, sizeof(table), "*@example.com example.com rsa1 %s/rsa.pem\n", dir);
    write_file("rsa.table", table, 0644);
    snprintf(keys, sizeof(keys),
             "rsa1._domainkey.example.com v=DKIM1; k=rsa; p=%s\n"
             "ed1._domainkey.ed.example v=DKIM1; k=ed25519; p=%s\n"
             "rsa1._domainkey.dual.example v=DKIM1; k=rsa; p=%s\n"
             "ed1._domainkey.dual.example v=DKIM1; k=ed25519; p=%s\n"
             "rsa1._domainkey.other.example v=DKIM1; p=%s\n"
             "rsa1._domainkey.sub.example v=DKIM1; k=rsa; p=%s\n"
             "edmis._domainkey.mis.example v=DKIM1; k=rsa; p=%s\n"
             "tempsel._domainkey.temp.example !TRY_AGAIN\n",
             rsa, ed, rsa, ed, rsa, rsa, ed);
    write_file("keys.txt", keys, 0644);
    snprintf(conf_sign, sizeof(conf_sign),
             "plugin dkim { internal_networks = { \"192.0.2.0/24\" } ");
    snprintf(conf_verify, sizeof(conf_verify),
             "plugin dkim { verify = yes test_keys = \"%s/keys.txt\" authserv_id = \"mx.test\" ",
             dir);
    free(rsa);
    free(ed);
}

static void keys_teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* message_text - a test message from `from` */
static void message_text(char *buf, size_t size, const char *from, const char *body)
{
    snprintf(buf, size,
             "From: Test User <%s>\r\nTo: rcpt@example.net\r\nSubject: dkim test\r\n"
             "Date: Tue, 01 Dec 2026 13:00:00 +0000\r\nMessage-ID: <t1@example.com>\r\n"
             "\r\n%s", from, body);
}

/* sign_with - run text through a signing host; returns the message with
 * the added DKIM-Signature fields in front (malloc'd) and their count */
static char *sign_with(const char *extra, const char *ip, const char *login,
                       const char *sender, const char *text, int *nsig_r)
{
    char conf[2048];
    struct st_host *h;
    const char *v;
    size_t size = strlen(text) + 1, len = 0;
    char *out = malloc(size);
    int n;

    if (extra && strstr(extra, "sign_table"))
        snprintf(conf, sizeof(conf), "%s %s }", conf_sign, extra);
    else
        snprintf(conf, sizeof(conf), "%s sign_table = \"%s/sign.table\" %s }", conf_sign, dir,
                 extra ? extra : "");
    h = st_host_new(conf);
    st_connect(h, ip, "client.example");
    st_helo(h, "client.example", 1);
    if (login)
        st_auth(h, login, "PLAIN");
    ck_assert_int_eq(st_mail(h, sender, NULL).verdict, SUBM_CONTINUE);
    st_rcpt(h, "rcpt@example.net", NULL);
    ck_assert_int_eq(st_message(h, text, 7).verdict, SUBM_CONTINUE);
    out[0] = '\0';
    /* The fields were inserted at the top in order, so the last added is 1. */
    for (n = 1; (v = st_header_after_mods(h, "DKIM-Signature", n)); n++) {
        size += strlen(v) + 32;
        out = realloc(out, size);
        len += (size_t)snprintf(out + len, size - len, "DKIM-Signature: %s\r\n", v);
    }
    snprintf(out + len, size - len, "%s", text);
    *nsig_r = n - 1;
    st_host_free(&h);
    return out;
}

/* verify_ar - the Authentication-Results a verifying host adds (malloc'd) */
static char *verify_ar(const char *extra, const char *text)
{
    char conf[2048];
    struct st_host *h;
    const char *v;
    char *ar;

    snprintf(conf, sizeof(conf), "%s %s }", conf_verify, extra ? extra : "");
    h = st_host_new(conf);
    st_connect(h, "198.51.100.20", "outside.example");
    st_helo(h, "outside.example", 1);
    ck_assert_int_eq(st_mail(h, "someone@example.org", NULL).verdict, SUBM_CONTINUE);
    st_rcpt(h, "rcpt@example.net", NULL);
    ck_assert_int_eq(st_message(h, text, 5).verdict, SUBM_CONTINUE);
    v = st_header_after_mods(h, "Authentication-Results", 1);
    ar = strdup(v ? v : "(none)");
    st_host_free(&h);
    return ar;
}

/* replace - text with the first `from` replaced by `to` (malloc'd) */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    size_t size = strlen(text) + strlen(to) + 1;
    char *out = malloc(size);

    ck_assert_ptr_nonnull(at);
    snprintf(out, size, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

/* count - occurrences of needle in hay */
static int count(const char *hay, const char *needle)
{
    int n = 0;

    while ((hay = strstr(hay, needle))) {
        n++;
        hay += strlen(needle);
    }
    return n;
}

/* ---- sign, then verify (possibly after a change) ---- */

static const struct {
    const char *label, *from, *options;
    const char *change_from, *change_to;   /* NULL: unchanged */
    int         nsig;
    const char *want;                      /* every dkim= result */
    const char *want_d, *want_a;
} roundtrips[] = {
    { "rsa relaxed", "u@example.com", NULL, NULL, NULL, 1, "pass", "example.com", "rsa-sha256" },
    { "ed25519 relaxed", "u@ed.example", NULL, NULL, NULL, 1, "pass", "ed.example", "ed25519-sha256" },
    { "rsa and ed25519", "u@dual.example", NULL, NULL, NULL, 2, "pass", "dual.example", NULL },
    { "rsa simple/simple", "u@example.com", "header_canon = simple body_canon = simple "
      "sign_table = \"DIR/rsa.table\"",
      NULL, NULL, 1, "pass", "example.com", "rsa-sha256" },
    { "ed25519 relaxed/simple", "u@ed.example", "body_canon = simple",
      NULL, NULL, 1, "pass", "ed.example", "ed25519-sha256" },
    { "ed25519 simple/simple", "u@ed.example", "header_canon = simple body_canon = simple",
      NULL, NULL, 1, "pass", "ed.example", "ed25519-sha256" },
    { "ed25519 simple/relaxed", "u@ed.example", "header_canon = simple",
      NULL, NULL, 1, "pass", "ed.example", "ed25519-sha256" },
    { "dual simple/simple", "u@dual.example", "header_canon = simple body_canon = simple",
      NULL, NULL, 2, "pass", "dual.example", NULL },
    { "ed25519 simple: whitespace matters", "u@ed.example", "header_canon = simple body_canon = simple",
      "line two", "line  two", 1, "fail", "ed.example", NULL },
    { "rsa body changed", "u@example.com", NULL, "line two", "line 2", 1, "fail", "example.com", NULL },
    { "ed25519 body changed", "u@ed.example", NULL, "line two", "line 2", 1, "fail", "ed.example", NULL },
    { "dual body changed", "u@dual.example", NULL, "line two", "line 2", 2, "fail", "dual.example", NULL },
    { "subject changed", "u@example.com", NULL, "Subject: dkim test", "Subject: dkim rest", 1,
      "fail", "example.com", NULL },
    { "From added (oversigned)", "u@example.com", NULL, "To: rcpt", "From: evil@example.org\r\nTo: rcpt",
      1, "fail", "example.com", NULL },
    { "unsigned field added", "u@example.com", NULL, "To: rcpt", "X-Added: yes\r\nTo: rcpt",
      1, "pass", "example.com", NULL },
    { "relaxed survives whitespace", "u@example.com", NULL, "Subject: dkim test",
      "Subject:  dkim   test", 1, "pass", "example.com", NULL },
    { "address pattern", "alice@other.example", NULL, NULL, NULL, 1, "pass", "other.example", NULL },
    { "subdomain pattern", "u@deep.sub.example", NULL, NULL, NULL, 1, "pass", "sub.example", NULL },
    { "k=rsa on an ed25519 key", "u@mis.example", NULL, NULL, NULL, 1, "permerror", "mis.example", NULL },
    { "missing key", "u@nokey.example", NULL, NULL, NULL, 1, "permerror", "nokey.example", NULL },
    { "key DNS failure", "u@temp.example", NULL, NULL, NULL, 1, "temperror", "temp.example", NULL },
};

START_TEST(test_roundtrip)
{
    char text[1024], want[64], *signed_text, *changed, *ar, *opts;
    int nsig;

    message_text(text, sizeof(text), roundtrips[_i].from, "line one\r\nline two\r\n");
    opts = roundtrips[_i].options && strstr(roundtrips[_i].options, "DIR")
           ? replace(roundtrips[_i].options, "DIR", dir)
           : roundtrips[_i].options ? strdup(roundtrips[_i].options) : NULL;
    signed_text = sign_with(opts, "192.0.2.10", NULL, roundtrips[_i].from, text, &nsig);
    free(opts);
    ck_assert_msg(nsig == roundtrips[_i].nsig, "%s: %d signatures, want %d",
                  roundtrips[_i].label, nsig, roundtrips[_i].nsig);
    if (roundtrips[_i].want_a) {
        snprintf(want, sizeof(want), "a=%s;", roundtrips[_i].want_a);
        ck_assert_msg(strstr(signed_text, want) != NULL, "%s: no %s in\n%s",
                      roundtrips[_i].label, want, signed_text);
    }
    changed = roundtrips[_i].change_from
              ? replace(signed_text, roundtrips[_i].change_from, roundtrips[_i].change_to)
              : strdup(signed_text);
    ar = verify_ar(NULL, changed);
    snprintf(want, sizeof(want), "dkim=%s", roundtrips[_i].want);
    ck_assert_msg(strncmp(ar, "mx.test;", 8) == 0 && count(ar, want) == nsig
                  && count(ar, "dkim=") == nsig,
                  "%s: Authentication-Results \"%s\", want %d x %s", roundtrips[_i].label,
                  ar, nsig, want);
    snprintf(want, sizeof(want), "header.d=%s ", roundtrips[_i].want_d);
    ck_assert_msg(strstr(ar, want) != NULL, "%s: no %s in \"%s\"", roundtrips[_i].label, want, ar);
    free(ar);
    free(changed);
    free(signed_text);
}
END_TEST

/* ---- who gets signed ---- */

static const struct {
    const char *label, *ip, *login, *from, *sender;
    int         nsig;
    const char *want_d;
} who[] = {
    { "internal network", "192.0.2.10", NULL, "u@example.com", "u@example.com", 1, "d=example.com;" },
    { "outside, not authenticated", "198.51.100.9", NULL, "u@example.com", "u@example.com", 0, NULL },
    { "outside, authenticated", "198.51.100.9", "alice", "u@example.com", "u@example.com", 1, "d=example.com;" },
    { "loopback is not internal here", "127.0.0.1", NULL, "u@example.com", "u@example.com", 0, NULL },
    { "no matching pattern", "192.0.2.10", NULL, "u@unknown.example", "u@unknown.example", 0, NULL },
    { "address pattern, other user", "192.0.2.10", NULL, "bob@other.example", "bob@other.example", 0, NULL },
    { "From decides, not MAIL FROM", "192.0.2.10", NULL, "u@ed.example", "bounce@example.com", 1, "d=ed.example;" },
};

START_TEST(test_who)
{
    char text[1024], *signed_text;
    int nsig;

    message_text(text, sizeof(text), who[_i].from, "hello\r\n");
    signed_text = sign_with(NULL, who[_i].ip, who[_i].login, who[_i].sender, text, &nsig);
    ck_assert_msg(nsig == who[_i].nsig, "%s: %d signatures, want %d", who[_i].label, nsig,
                  who[_i].nsig);
    if (who[_i].want_d)
        ck_assert_msg(strstr(signed_text, who[_i].want_d) != NULL, "%s: no %s in\n%s",
                      who[_i].label, who[_i].want_d, signed_text);
    free(signed_text);
}
END_TEST

/* No From: field (RFC 5322 wants one; RFC 6376 must sign it): the
 * message goes on unsigned, it is not refused. */
START_TEST(test_no_from)
{
    int nsig;
    char *s = sign_with(NULL, "192.0.2.10", NULL, "u@ed.example",
                        "Subject: no from\r\n\r\nbody\r\n", &nsig);

    ck_assert_int_eq(nsig, 0);
    free(s);
}
END_TEST

/* The signature covers From twice (oversigning) and the listed fields. */
START_TEST(test_signed_fields)
{
    char text[1024], *s, *h;
    int nsig;

    message_text(text, sizeof(text), "u@example.com", "x\r\n");
    s = sign_with("oversign_headers = { \"From\", \"Subject\" }", "192.0.2.10", NULL,
                  "u@example.com", text, &nsig);
    ck_assert_int_eq(nsig, 1);
    h = strstr(s, "h=");
    ck_assert_ptr_nonnull(h);
    ck_assert_msg(count(s, "From") >= 3 && count(s, "Subject") >= 3,
                  "From/Subject not oversigned:\n%s", s);
    ck_assert_msg(strstr(s, "Message-ID") != NULL || strstr(s, "message-id") != NULL,
                  "Message-ID not signed:\n%s", s);
    ck_assert_msg(strstr(s, "c=relaxed/relaxed;") != NULL, "default canonicalization:\n%s", s);
    free(s);
}
END_TEST

/* An unsigned message: dkim=none. A forged result with our id goes. */
START_TEST(test_verify_none_and_forged)
{
    char *ar;
    struct st_host *h;
    char conf[2048];
    const char *v;
    int n, forged = 0, ours = 0, other = 0;

    ar = verify_ar(NULL, "From: a@example.org\r\nSubject: plain\r\n\r\nbody\r\n");
    ck_assert_msg(strstr(ar, "mx.test; dkim=none") != NULL, "got \"%s\"", ar);
    free(ar);

    snprintf(conf, sizeof(conf), "%s }", conf_verify);
    h = st_host_new(conf);
    st_connect(h, "198.51.100.20", "outside.example");
    st_helo(h, "outside.example", 1);
    st_mail(h, "a@example.org", NULL);
    st_rcpt(h, "rcpt@example.net", NULL);
    ck_assert_int_eq(st_message(h,
        "Authentication-Results: mx.test; dkim=pass header.d=forged.example\r\n"
        "Authentication-Results: elsewhere.example; spf=pass smtp.mailfrom=a@example.org\r\n"
        "From: a@example.org\r\nSubject: forged\r\n\r\nbody\r\n", 0).verdict, SUBM_CONTINUE);
    for (n = 1; (v = st_header_after_mods(h, "Authentication-Results", n)); n++) {
        if (strstr(v, "forged"))
            forged++;
        else if (strncmp(v, "mx.test;", 8) == 0)
            ours++;
        else if (strncmp(v, "elsewhere.example;", 18) == 0)
            other++;
    }
    ck_assert_msg(forged == 0 && ours == 1 && other == 1, "forged %d ours %d other %d",
                  forged, ours, other);
    st_host_free(&h);
}
END_TEST

/* An internal client's message is signed, not verified. */
START_TEST(test_sign_and_verify_modes)
{
    char conf[2048], text[1024];
    struct st_host *h;

    snprintf(conf, sizeof(conf), "%s sign_table = \"%s/sign.table\" verify = yes "
             "test_keys = \"%s/keys.txt\" }", conf_sign, dir, dir);
    h = st_host_new(conf);
    message_text(text, sizeof(text), "u@example.com", "x\r\n");
    st_connect(h, "192.0.2.10", "client.example");
    st_mail(h, "u@example.com", NULL);
    st_rcpt(h, "rcpt@example.net", NULL);
    ck_assert_int_eq(st_message(h, text, 0).verdict, SUBM_CONTINUE);
    ck_assert_ptr_nonnull(st_header_after_mods(h, "DKIM-Signature", 1));
    ck_assert_ptr_null(st_header_after_mods(h, "Authentication-Results", 1));
    st_host_free(&h);
}
END_TEST

/* A flood of signatures: eight are reported (the rest are ignored before
 * any key lookup, by the prescreen hook). */
START_TEST(test_signature_flood)
{
    char text[1024], *signed_text, *flood, *ar, *end;
    size_t siglen, size;
    int nsig, i;

    message_text(text, sizeof(text), "u@example.com", "x\r\n");
    signed_text = sign_with(NULL, "192.0.2.10", NULL, "u@example.com", text, &nsig);
    ck_assert_int_eq(nsig, 1);
    end = strstr(signed_text, "\r\nFrom:");
    ck_assert_ptr_nonnull(end);
    siglen = (size_t)(end - signed_text) + 2;
    size = 12 * siglen + strlen(text) + 1;
    flood = malloc(size);
    ck_assert_ptr_nonnull(flood);
    for (i = 0; i < 12; i++)
        memcpy(flood + (size_t)i * siglen, signed_text, siglen);
    memcpy(flood + 12 * siglen, text, strlen(text) + 1);
    ar = verify_ar(NULL, flood);
    ck_assert_msg(count(ar, "dkim=pass") == 8 && count(ar, "dkim=") == 8,
                  "want 8 results: %s", ar);
    free(ar);
    free(flood);
    free(signed_text);
}
END_TEST

/* Malformed signatures from outside: a clear result, never a failure of
 * the message or the process. */
static const struct {
    const char *label, *sig, *want;
} malformed[] = {
    { "garbage", "DKIM-Signature: garbage\r\n", "dkim=neutral" },
    { "empty", "DKIM-Signature:\r\n", "dkim=neutral" },
    { "no d=", "DKIM-Signature: v=1; a=rsa-sha256; s=rsa1; h=from; bh=AAAA; b=AAAA\r\n",
      "dkim=neutral" },
    { "unknown a=", "DKIM-Signature: v=1; a=rsa-md5; d=example.com; s=rsa1; h=from; "
      "bh=AAAA; b=AAAA\r\n", "dkim=neutral" },
    { "bad base64", "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa1; h=from; "
      "bh=!!!!; b=####\r\n", NULL },
    { "quotes and parens in d=", "DKIM-Signature: v=1; a=rsa-sha256; d=\"x(y)\"; s=rsa1; "
      "h=from; bh=AAAA; b=AAAA\r\n", NULL },
};

START_TEST(test_malformed)
{
    char text[8192], *ar;

    snprintf(text, sizeof(text), "%sFrom: a@example.com\r\nSubject: x\r\n\r\nbody\r\n",
             malformed[_i].sig);
    ar = verify_ar(NULL, text);
    /* Unparsable: neutral; parsed but wrong: fail or permerror. Never
     * pass, never none (the message was signed, RFC 8601 2.7.1). */
    ck_assert_msg(strncmp(ar, "mx.test;", 8) == 0
                  && (strstr(ar, "dkim=neutral") || strstr(ar, "dkim=fail")
                      || strstr(ar, "dkim=permerror"))
                  && (!malformed[_i].want || strstr(ar, malformed[_i].want)),
                  "%s: %s", malformed[_i].label, ar);
    /* Whatever the signature says, the field stays one well-formed line
     * set: no bare CR/LF, no unbalanced comment. */
    ck_assert_msg(count(ar, "(") == count(ar, ")"), "%s: %s", malformed[_i].label, ar);
    free(ar);
}
END_TEST

/* A huge DKIM-Signature value (64 KB of tags). */
START_TEST(test_huge_signature)
{
    size_t size = 70000, o;
    char *text = malloc(size), *ar;

    ck_assert_ptr_nonnull(text);
    o = (size_t)snprintf(text, size, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa1; "
                         "h=from; bh=AAAA; b=");
    while (o < 65000)
        text[o++] = 'A';
    snprintf(text + o, size - o, "\r\nFrom: a@example.com\r\n\r\nbody\r\n");
    ar = verify_ar(NULL, text);
    ck_assert_msg(strncmp(ar, "mx.test;", 8) == 0 && !strstr(ar, "dkim=pass"), "%s", ar);
    free(ar);
    free(text);
}
END_TEST

/* ---- configurations that must be refused, with the reason ---- */

static const struct {
    const char *label, *table_line, *options, *needle;
    mode_t      key_mode;
} bad[] = {
    { "group-readable key", "* example.com s1 DIR/badkey.pem", "", "chmod 600", 0640 },
    { "world-readable key", "* example.com s1 DIR/badkey.pem", "", "readable by its owner only", 0604 },
    { "From not signed", "* example.com s1 DIR/rsa.pem", "sign_headers = { \"Subject\" }",
      "must include From", 0600 },
    { "malformed line", "* example.com DIR/rsa.pem", "", "PATTERN DOMAIN SELECTOR KEYFILE", 0600 },
    { "missing key file", "* example.com s1 DIR/none.pem", "", "none.pem", 0600 },
    { "not a key", "* example.com s1 DIR/sign.table", "", "not a PEM", 0600 },
};

START_TEST(test_bad_conf)
{
    char *line, table[600], conf[2048], err[2048] = "", path[256];
    struct st_host *h;
    FILE *in, *out;
    int c;

    /* A copy of the RSA key with the mode under test. */
    snprintf(path, sizeof(path), "%s/rsa.pem", dir);
    in = fopen(path, "r");
    snprintf(path, sizeof(path), "%s/badkey.pem", dir);
    unlink(path);
    out = fopen(path, "w");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    while ((c = fgetc(in)) != EOF)
        fputc(c, out);
    fclose(in);
    fclose(out);
    chmod(path, bad[_i].key_mode);
    snprintf(path, sizeof(path), "%s/sign.table", dir);
    chmod(path, 0600);
    line = replace(bad[_i].table_line, "DIR", dir);
    snprintf(table, sizeof(table), "%s\n", line);
    free(line);
    write_file("bad.table", table, 0644);
    snprintf(conf, sizeof(conf), "plugin dkim { sign_table = \"%s/bad.table\" %s }", dir,
             bad[_i].options);
    h = st_host_try(conf, err, sizeof(err));
    ck_assert_msg(h == NULL, "%s: loaded", bad[_i].label);
    ck_assert_msg(strstr(err, bad[_i].needle) != NULL, "%s: \"%s\" lacks \"%s\"",
                  bad[_i].label, err, bad[_i].needle);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *dkim_suite(void)
{
    Suite *s = suite_create("dkim");
    TCase *tc = tcase_create("plugin");

    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_roundtrip, 0, N(roundtrips));
    tcase_add_loop_test(tc, test_who, 0, N(who));
    tcase_add_test(tc, test_no_from);
    tcase_add_test(tc, test_signed_fields);
    tcase_add_test(tc, test_verify_none_and_forged);
    tcase_add_test(tc, test_sign_and_verify_modes);
    tcase_add_test(tc, test_signature_flood);
    tcase_add_loop_test(tc, test_malformed, 0, N(malformed));
    tcase_add_test(tc, test_huge_signature);
    tcase_add_loop_test(tc, test_bad_conf, 0, N(bad));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dkim_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
