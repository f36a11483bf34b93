/*
 * dkim.c - the dkim plugin: DKIM signing (RFC 6376; rsa-sha256 and
 * ed25519-sha256 (RFC 8463) with dkim_ed25519.c) of what internal clients
 * submit, and optional verification of what others send with libopendkim.
 *
 * Internal = the session authenticated (subm_auth_login) or the client is
 * in internal_networks. For those, header fields are kept as they arrive;
 * at the end of the header the signing key(s) are chosen by the From:
 * address (a message without From: is not signed) from sign_table
 * (dkim_keys.c, keys parsed once at init), each signer gets each body
 * chunk, then signs the header fields at end of message, and each
 * signature is inserted as the first
 * field through the modification API, so both front-ends add the same
 * field. What is signed is the message as the client sent it: fields other
 * plugins add are not covered, and a plugin that changes a signed field or
 * the body breaks the signature, wherever it sits in the chain
 * (modifications are applied after the whole chain ran).
 *
 * With verify = yes, other clients' messages are fed to a verifying handle;
 * public keys come from dkim_pubkey.c (DNS under the stage deadline, or a
 * test file), and at end of message an Authentication-Results field with a
 * dkim= clause per signature replaces any forged one carrying our
 * authserv-id. Where libopendkim's answer is not RFC 6376's, ours wins: a
 * missing key is permerror and a DNS failure temperror, and a key whose k=
 * does not match the signature's a= is permerror. A deadline that passes
 * during a key lookup gives 451 4.4.3 for that message.
 *
 * Files: dkim.c (options, init, hooks), dkim_sign.c, dkim_verify.c,
 * dkim_ed25519.c, dkim_keys.c (sign table), dkim_pubkey.c (key records).
 * Does not do ADSP, DMARC, ARC or body length limits (l=).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "authres.h"
#include "dkim_int.h"

static const char *const canon_names[] = { "relaxed", "simple", NULL };

#define O(f) offsetof(struct dkim_conf, f)
static const subm_option_t dkim_options_table[] = {
    { "sign", SUBM_OPT_BOOL, "yes", O(sign), 0, 0, NULL,
      "sign messages of authenticated and internal clients" },
    { "verify", SUBM_OPT_BOOL, "no", O(verify), 0, 0, NULL,
      "verify other clients' signatures, add Authentication-Results" },
    { "sign_table", SUBM_OPT_PATH, "", O(sign_table), 0, 0, NULL,
      "PATTERN DOMAIN SELECTOR KEYFILE lines" },
    { "internal_networks", SUBM_OPT_LIST, "{\"127.0.0.0/8\", \"::1\"}", O(internal_networks),
      0, 0, NULL, "clients whose mail is signed without AUTH" },
    { "header_canon", SUBM_OPT_ENUM, "relaxed", O(header_canon), 0, 0, canon_names,
      "header canonicalization" },
    { "body_canon", SUBM_OPT_ENUM, "relaxed", O(body_canon), 0, 0, canon_names,
      "body canonicalization" },
    { "sign_headers", SUBM_OPT_LIST,
      "{\"From\", \"Sender\", \"Reply-To\", \"Subject\", \"Date\", \"To\", \"Cc\", "
      "\"Message-ID\", \"In-Reply-To\", \"References\", \"MIME-Version\", "
      "\"Content-Type\", \"Content-Transfer-Encoding\", \"List-Id\", "
      "\"List-Unsubscribe\", \"List-Unsubscribe-Post\"}",
      O(sign_headers), 0, 0, NULL, "header fields signed when present" },
    { "oversign_headers", SUBM_OPT_LIST, "{\"From\"}", O(oversign_headers), 0, 0, NULL,
      "fields signed once more than present, so none can be added" },
    { "authserv_id", SUBM_OPT_STR, "", O(authserv_id), 0, 0, NULL,
      "Authentication-Results authserv-id (default: hostname)" },
    { "strip_forged", SUBM_OPT_BOOL, "yes", O(strip_forged), 0, 0, NULL,
      "remove received Authentication-Results with our authserv-id" },
    { "test_keys", SUBM_OPT_PATH, "", O(test_keys), 0, 0, NULL,
      "tests only: public key records from this file, not the DNS" },
    SUBM_OPT_END
};

/* lib_setup - one libopendkim library handle per instance (verification) */
static int lib_setup(struct dkim_conf *cf, subm_error_t *err)
{
    size_t i;
    int has_from = 0;

    for (i = 0; cf->sign_headers && cf->sign_headers[i]; i++)
        has_from |= strcasecmp(cf->sign_headers[i], "From") == 0;
    if (!has_from)
        return subm_error(err, "sign_headers must include From (RFC 6376 5.4)");
    if (!(cf->lib = dkim_init(NULL, NULL)))
        return subm_error(err, "libopendkim: dkim_init failed");
    if (dkim_verify_setup(cf->lib) < 0)
        return subm_error(err, "libopendkim refused our callbacks");
    return 0;
}

static void dkim_fini(void *conf);

/* init_parts - keys, networks, key source, library */
static int init_parts(void *conf, subm_error_t *err)
{
    struct dkim_conf *cf = conf;
    char msg[512];

    if (!(cf->internal = netlist_new(cf->internal_networks, msg, sizeof(msg))))
        return subm_error(err, "internal_networks: %s", msg);
    if (cf->sign && cf->sign_table && cf->sign_table[0]
        && !(cf->table = sign_table_load(cf->sign_table, msg, sizeof(msg))))
        return subm_error(err, "%s", msg);
    if (cf->sign && !cf->table && !cf->verify)
        return subm_error(err, "nothing to do: set sign_table, or verify = yes");
    if (cf->verify && !(cf->keys = dkim_pubkey_new(cf->test_keys, msg, sizeof(msg))))
        return subm_error(err, "%s", msg);
    return lib_setup(cf, err);
}

/* dkim_init_conf - init_parts, undone if it fails half-way */
static int dkim_init_conf(void *conf, subm_error_t *err)
{
    if (init_parts(conf, err) == 0)
        return 0;
    dkim_fini(conf);
    return -1;
}

/* dkim_fini - free what init made (safe to call twice) */
static void dkim_fini(void *conf)
{
    struct dkim_conf *cf = conf;

    if (cf->lib)
        dkim_close(cf->lib);
    cf->lib = NULL;
    dkim_pubkey_free(&cf->keys);
    sign_table_free(&cf->table);
    netlist_free(&cf->internal);
}

/* txn_cleanup - free the signers and libopendkim handle when the transaction ends */
static void txn_cleanup(void *arg)
{
    struct dkim_txn *t = arg;
    size_t i;

    for (i = 0; i < t->nsigners; i++)
        ed_signer_free(&t->eds[i]);
    t->nsigners = 0;
    if (t->verifier)
        dkim_free(t->verifier);
    t->verifier = NULL;
}

/* txn_get - this transaction's state, or NULL */
static struct dkim_txn *txn_get(subm_ctx_t *ctx)
{
    void **slot = subm_txn_slot(ctx);

    return slot ? *slot : NULL;
}

/* dkim_mail - decide: sign (internal client), verify, or nothing */
static subm_verdict_t dkim_mail(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_conf *cf = subm_instance(ctx);
    void **slot = subm_txn_slot(ctx);
    struct dkim_txn *t;
    int internal = subm_auth_login(ctx) != NULL
                   || netlist_match(cf->internal, subm_client_sockaddr(ctx));

    if (!slot)
        return SUBM_CONTINUE;
    if (!(internal ? cf->table != NULL : cf->verify))
        return SUBM_CONTINUE;
    t = subm_txn_alloc(ctx, sizeof(*t));
    if (!t || subm_txn_on_end(ctx, txn_cleanup, t) < 0)
        return subm_tempfail(ctx, 451, "4.3.0", "DKIM: out of memory");
    t->cf = cf;
    t->sign_mode = internal;
    t->hdrs = subm_txn_alloc(ctx, MAX_HEADERS * sizeof(char *));
    t->hlens = subm_txn_alloc(ctx, MAX_HEADERS * sizeof(size_t));
    if (!t->hdrs || !t->hlens)
        return subm_tempfail(ctx, 451, "4.3.0", "DKIM: out of memory");
    *slot = t;
    return SUBM_CONTINUE;
}

/* dkim_header_hook - keep fields for signing, or feed the verifier */
static subm_verdict_t dkim_header_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);
    char *copy;

    if (!t || !arg->raw)
        return SUBM_CONTINUE;
    if (!t->sign_mode) {
        dkim_verify_header(ctx, t, arg);
        return SUBM_CONTINUE;
    }
    if (t->nhdrs == MAX_HEADERS) {
        t->too_many = 1;
        return SUBM_CONTINUE;
    }
    if (!(copy = subm_txn_alloc(ctx, arg->raw_len + 1)))
        return subm_tempfail(ctx, 451, "4.3.0", "DKIM: out of memory");
    memcpy(copy, arg->raw, arg->raw_len);
    t->hdrs[t->nhdrs] = copy;
    t->hlens[t->nhdrs++] = arg->raw_len;
    return SUBM_CONTINUE;
}

/* dkim_eoh_hook - start signing, or let the verifier see the end of header */
static subm_verdict_t dkim_eoh_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);

    if (!t)
        return SUBM_CONTINUE;
    if (t->sign_mode)
        return dkim_sign_start(ctx, t);
    /* Forged results go now, before any plugin adds its own at EOM, so a
     * second plugin stripping the same fields can only hit received ones. */
    if (t->cf->strip_forged)
        authres_strip_forged(ctx, authres_id(ctx, t->cf->authserv_id));
    return dkim_verify_eoh(ctx, t);
}

/* dkim_body_hook - body chunks to every handle */
static subm_verdict_t dkim_body_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);

    if (!t || arg->len == 0)
        return SUBM_CONTINUE;
    if (t->sign_mode)
        dkim_sign_body(t, arg->data, arg->len);
    else
        dkim_verify_body(t, arg->data, arg->len);
    return SUBM_CONTINUE;
}

/* dkim_eom_hook - add signatures or the verification result */
static subm_verdict_t dkim_eom_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);

    if (!t)
        return SUBM_CONTINUE;
    return t->sign_mode ? dkim_sign_finish(ctx, t) : dkim_verify_finish(ctx, t);
}

SUBM_PLUGIN(dkim) = {
    SUBM_PLUGIN_HEAD,
    .name        = "dkim",
    .version     = "1.0",
    .description = "DKIM signing and verification (libopendkim)",
    .options     = dkim_options_table,
    .conf_size   = sizeof(struct dkim_conf),
    .flags       = SUBM_PLUGIN_NEEDS_HEADERS,
    .init        = dkim_init_conf,
    .fini        = dkim_fini,
    .on_mail     = dkim_mail,
    .on_header   = dkim_header_hook,
    .on_eoh      = dkim_eoh_hook,
    .on_body     = dkim_body_hook,
    .on_eom      = dkim_eom_hook,
};
