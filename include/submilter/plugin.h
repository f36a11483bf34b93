/*
 * submilter/plugin.h - the whole public API of a submilter policy plugin.
 *
 * A plugin is a shared object that exports one descriptor named `subm_plugin`
 * (write it with SUBM_PLUGIN()). The daemon dlopen()s it, checks the ABI
 * version and the descriptor size before running any of its code, reads the
 * plugin's option table into a configuration block of `conf_size` bytes, calls
 * `init`, and from then on calls the plugin's stage hooks from the sessions of
 * either front-end (the SMTP session proxy or the milter inside Postfix or
 * Sendmail). A plugin includes this header and nothing else of submilter's.
 *
 * Build one out of tree:
 *     cc -shared -fPIC $(pkg-config --cflags submilter) my.c -o my.so
 *
 * Life cycle
 *   load    dlopen, ABI check, option table merged into the config schema.
 *   init    once per chain (at start and at each reload) with the parsed
 *           options written into a zeroed block of `conf_size` bytes; the same
 *           block is the plugin *instance*: init may add derived state to it
 *           (compiled patterns, loaded keys). It is shared read-only by every
 *           session, from many threads at once: after init, never write it
 *           without your own locking.
 *   hooks   `on_<stage>` for the stages you care about; NULL hooks are skipped
 *           and, on the milter front-end, the MTA is asked not to send them.
 *   fini    when the chain is dropped (reload or stop) and no session uses it.
 *
 * Threads: every hook runs synchronously in its session's thread. A hook must
 * not block past subm_time_left_ms(); anything that waits (DNS, a socket)
 * must honour that deadline and return SUBM_TEMPFAIL when it runs out.
 *
 * Memory: every pointer a hook receives (arguments, strings returned by the
 * accessors below) is borrowed. Session strings live until the session ends;
 * transaction strings until the transaction ends (RSET, end of message,
 * abort); header and body arguments only for the call. Keep state in the
 * session or transaction slot and allocate it with subm_session_alloc() /
 * subm_txn_alloc(): it is freed for you.
 *
 * Everything here is C99; every public name starts with subm_ / SUBM_.
 */
#ifndef SUBMILTER_PLUGIN_H
#define SUBMILTER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * SUBM_PLUGIN_ABI - the version of this interface. It changes whenever the
 * descriptor, a hook's signature or the meaning of a call changes; the loader
 * refuses a plugin built for another version with a message naming both.
 */
#define SUBM_PLUGIN_ABI 1u

#if defined(__GNUC__)
#define SUBM_EXPORT  __attribute__((visibility("default")))
#define SUBM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SUBM_EXPORT
#define SUBM_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------
 * Stages, in the order a session meets them.
 *
 *  stage     smtp front-end             milter front-end      subm_arg_t fields
 *  CONNECT   accepted connection        xxfi_connect          -
 *  HELO      HELO / EHLO                xxfi_helo             text, esmtp
 *  TLS       finished TLS handshake     (macros at MAIL)      text = protocol
 *  AUTH      successful AUTH            ({auth_authen} at MAIL) text = login
 *  MAIL      MAIL FROM                  xxfi_envfrom          text, params
 *  RCPT      RCPT TO                    xxfi_envrcpt          text, params, index
 *  DATA      DATA or first BDAT         xxfi_data             -
 *  HEADER    each header field          xxfi_header           name, value, raw
 *  EOH       end of header              xxfi_eoh              -
 *  BODY      each body chunk            xxfi_body             data, len
 *  EOM       end of message             xxfi_eom              -
 *  VRFY      VRFY                       (never)               text
 *  EXPN      EXPN                       (xxfi_unknown)        text
 *  HELP      HELP                       (never)               text
 *  NOOP      NOOP                       (never)               text
 *  UNKNOWN   any other command          xxfi_unknown          text = command line
 *  RSET      RSET / transaction abort   xxfi_abort            -
 *  CLOSE     end of session             xxfi_close            -
 *
 * Addresses (MAIL, RCPT) are given without angle brackets; the null sender
 * is "". Header values are unfolded (CRLF removed, leading blanks trimmed);
 * `raw` is the field as received, "Name:value" with its folding, no final
 * CRLF. Body chunks use CRLF line ends, are not NUL-terminated and are never
 * dot-stuffed. The TLS and AUTH stages run once the facts are known; a
 * milter front-end runs them just before MAIL.
 * ------------------------------------------------------------------------ */
typedef enum subm_stage {
    SUBM_STAGE_CONNECT = 0,
    SUBM_STAGE_HELO,
    SUBM_STAGE_TLS,
    SUBM_STAGE_AUTH,
    SUBM_STAGE_MAIL,
    SUBM_STAGE_RCPT,
    SUBM_STAGE_DATA,
    SUBM_STAGE_HEADER,
    SUBM_STAGE_EOH,
    SUBM_STAGE_BODY,
    SUBM_STAGE_EOM,
    SUBM_STAGE_VRFY,
    SUBM_STAGE_EXPN,
    SUBM_STAGE_HELP,
    SUBM_STAGE_NOOP,
    SUBM_STAGE_UNKNOWN,
    SUBM_STAGE_RSET,
    SUBM_STAGE_CLOSE,
    SUBM_STAGE_COUNT
} subm_stage_t;

/* SUBM_STAGE_BIT - a stage as a bit, for subm_plugin_t.stages. */
#define SUBM_STAGE_BIT(st) (1u << (unsigned)(st))

/*
 * Verdicts. A stage runs the chain's plugins in order until one returns
 * something other than SUBM_CONTINUE.
 *   CONTINUE  no opinion; the next plugin runs.
 *   ACCEPT    this stage passes; later plugins are skipped for it. At HEADER
 *             and BODY it ends that stage for the rest of the message.
 *   REJECT    refuse with a 5xx reply (the whole session at CONNECT/HELO,
 *             one recipient at RCPT, the transaction elsewhere).
 *   TEMPFAIL  the same with a 4xx reply.
 *   DISCARD   accept the message, then drop it silently (transaction stages).
 * REJECT and TEMPFAIL use the reply set with subm_reply() during the call,
 * or a correct default for the stage. At VRFY/EXPN/HELP/NOOP/UNKNOWN, ACCEPT
 * with a reply set answers the command with that (2xx) reply; ACCEPT without
 * one lets the front-end do its default (relay VRFY to the backend, etc).
 */
typedef enum subm_verdict {
    SUBM_CONTINUE = 0,
    SUBM_ACCEPT,
    SUBM_REJECT,
    SUBM_TEMPFAIL,
    SUBM_DISCARD
} subm_verdict_t;

/* An ESMTP parameter of MAIL or RCPT: "SIZE" / "1024"; value NULL if none. */
typedef struct subm_param {
    const char *name;
    const char *value;
} subm_param_t;

/* subm_arg_t - what a stage hook is given (see the stage table above). */
typedef struct subm_arg {
    subm_stage_t          stage;
    const char           *text;    /* helo name, address, login, argument */
    int                   esmtp;   /* HELO: 1 for EHLO */
    const subm_param_t   *params;  /* MAIL, RCPT: ESMTP parameters ... */
    size_t                nparams; /* ... and how many */
    size_t                index;   /* RCPT: index for subm_txn_rcpt() */
    const char           *name;    /* HEADER: field name */
    const char           *value;   /* HEADER: unfolded value */
    const char           *raw;     /* HEADER: "Name:value" as received */
    size_t                raw_len;
    const unsigned char  *data;    /* BODY: chunk */
    size_t                len;
} subm_arg_t;

/* The opaque handle a hook gets: one session, one plugin, one stage. */
typedef struct subm_ctx subm_ctx_t;

typedef subm_verdict_t (*subm_hook_t)(subm_ctx_t *ctx, const subm_arg_t *arg);

/* ------------------------------------------------------------------------
 * Options. A plugin declares its options once, in a table ended by
 * SUBM_OPT_END. The daemon owns the syntax, the defaults, the range checks
 * and the error messages (with file and line), and writes each value at
 * `offset` inside the plugin's configuration block:
 *   SUBM_OPT_STR    const char *        any string ("" allowed)
 *   SUBM_OPT_PATH   const char *        a file name, "" = unset
 *   SUBM_OPT_INT    long                decimal, within [min, max]
 *   SUBM_OPT_BOOL   int                 yes/no, true/false, on/off, 1/0
 *   SUBM_OPT_SIZE   uint64_t            bytes; suffix K, M, G (1024-based)
 *   SUBM_OPT_TIME   long                milliseconds; suffix ms, s, m, h, d
 *                                       (a bare number is seconds)
 *   SUBM_OPT_ENUM   int                 index into `choices`
 *   SUBM_OPT_LIST   const char *const * NULL-terminated list: { "a", "b" }
 * Strings and lists stay valid for the life of the instance. A NULL default
 * means "no default": STR/PATH read as NULL, LIST as an empty list.
 * ------------------------------------------------------------------------ */
typedef enum subm_opt_type {
    SUBM_OPT_NONE = 0,
    SUBM_OPT_STR,
    SUBM_OPT_PATH,
    SUBM_OPT_INT,
    SUBM_OPT_BOOL,
    SUBM_OPT_SIZE,
    SUBM_OPT_TIME,
    SUBM_OPT_ENUM,
    SUBM_OPT_LIST
} subm_opt_type_t;

typedef struct subm_option {
    const char          *name;
    subm_opt_type_t      type;
    const char          *def;      /* default, written as in the file */
    size_t               offset;   /* offsetof(struct your_conf, field) */
    long long            min;      /* INT/SIZE/TIME bounds; both 0: none */
    long long            max;
    const char *const   *choices;  /* ENUM: NULL-terminated names */
    const char          *help;     /* one line, shown by `submilter -t -d` */
} subm_option_t;

#define SUBM_OPT_END { NULL, SUBM_OPT_NONE, NULL, 0, 0, 0, NULL, NULL }

/* Room for an error message from init; fill it with subm_error(). */
typedef struct subm_error {
    char text[512];
} subm_error_t;

/* Descriptor flags. */
#define SUBM_PLUGIN_NEEDS_BODY    0x01u /* reads the body at EOM */
#define SUBM_PLUGIN_NEEDS_HEADERS 0x02u /* reads the header list at EOM */

/*
 * subm_plugin_t - the descriptor. Fill it with designated initialisers; the
 * first two fields must be SUBM_PLUGIN_ABI and sizeof(subm_plugin_t), which
 * SUBM_PLUGIN() does for you.
 *
 * init(conf, err) - conf is the plugin's block with its options filled in;
 *     return 0, or -1 with a message in err (the daemon prefixes file, line
 *     and plugin name; the chain is not started). May be NULL.
 * fini(conf) - free what init made. May be NULL. When fini returns, no
 *     code of the plugin may run any more (join your threads here): the
 *     daemon may unload the object after a reload.
 */
typedef struct subm_plugin {
    uint32_t              abi;
    uint32_t              size;
    const char           *name;
    const char           *version;
    const char           *description;
    const subm_option_t  *options;
    size_t                conf_size;
    unsigned              flags;
    int                 (*init)(void *conf, subm_error_t *err);
    void                (*fini)(void *conf);
    /* stages(conf) - after init: the stages this instance really uses, as
     * SUBM_STAGE_BIT(s) | ...; NULL means every stage it has a hook for.
     * A rules plugin with no body rule says so here, and the milter
     * front-end asks the MTA not to send the body. May be NULL. */
    unsigned            (*stages)(const void *conf);

    subm_hook_t on_connect, on_helo, on_tls, on_auth, on_mail, on_rcpt,
                on_data, on_header, on_eoh, on_body, on_eom, on_vrfy,
                on_expn, on_help, on_noop, on_unknown, on_rset, on_close;
} subm_plugin_t;

/* SUBM_PLUGIN(name) - define the exported descriptor:
 *     SUBM_PLUGIN(size) = { SUBM_PLUGIN_HEAD, .name = "size", ... }; */
#define SUBM_PLUGIN(id) \
    SUBM_EXPORT extern const subm_plugin_t subm_plugin; \
    const subm_plugin_t subm_plugin
#define SUBM_PLUGIN_HEAD .abi = SUBM_PLUGIN_ABI, .size = sizeof(subm_plugin_t)

/* ------------------------------------------------------------------------
 * Replies and the instance
 * ------------------------------------------------------------------------ */

/*
 * subm_reply - set the reply for the verdict this hook is about to return.
 * code is the SMTP reply code (5xx for REJECT, 4xx for TEMPFAIL, 2xx for an
 * ACCEPT that answers VRFY & co), ecode the RFC 3463 enhanced code ("5.7.1")
 * or NULL for the stage's default. A '\n' in the text starts a new line of a
 * multi-line reply; other control characters are replaced and the text is
 * bounded. A code of the wrong class for the verdict is replaced by the
 * stage's default (and logged).
 */
void subm_reply(subm_ctx_t *ctx, int code, const char *ecode,
                const char *fmt, ...) SUBM_PRINTF(4, 5);

/* subm_reject / subm_tempfail - subm_reply() and return the verdict. */
subm_verdict_t subm_reject(subm_ctx_t *ctx, int code, const char *ecode,
                           const char *fmt, ...) SUBM_PRINTF(4, 5);
subm_verdict_t subm_tempfail(subm_ctx_t *ctx, int code, const char *ecode,
                             const char *fmt, ...) SUBM_PRINTF(4, 5);

/* subm_instance - this plugin's configuration block (as filled by init). */
void *subm_instance(const subm_ctx_t *ctx);

/* subm_stage - the stage being run. */
subm_stage_t subm_stage(const subm_ctx_t *ctx);

/* subm_error - write an init error message. Returns -1 for `return`. */
int subm_error(subm_error_t *err, const char *fmt, ...) SUBM_PRINTF(2, 3);

/*
 * subm_set_size_limit - at CONNECT or HELO, the largest message (octets) this
 * session may send. The smtp front-end advertises the smallest limit any
 * plugin set (and its own max_message_size) in the EHLO SIZE keyword; it is
 * advisory on the milter front-end (the MTA advertises its own).
 */
void subm_set_size_limit(subm_ctx_t *ctx, uint64_t bytes);

/* ------------------------------------------------------------------------
 * Time. Each stage gives the chain a deadline (`plugin_timeout` in the
 * configuration, bounded by the front-end's own). Past it, return
 * SUBM_TEMPFAIL.
 * ------------------------------------------------------------------------ */
long subm_time_left_ms(const subm_ctx_t *ctx);

/* ------------------------------------------------------------------------
 * Logging: syslog facility mail, one line, prefixed with the session id and
 * the plugin name. ctx may be NULL (from init). DEBUG lines appear with -d.
 * ------------------------------------------------------------------------ */
typedef enum subm_log_level {
    SUBM_LOG_DEBUG = 0,
    SUBM_LOG_INFO,
    SUBM_LOG_WARN,
    SUBM_LOG_ERROR
} subm_log_level_t;

void subm_log(const subm_ctx_t *ctx, subm_log_level_t level,
              const char *fmt, ...) SUBM_PRINTF(3, 4);

/* ------------------------------------------------------------------------
 * The session (one client connection, or one MTA connection on the milter
 * front-end). Strings are NULL when unknown; all live until the session ends.
 * ------------------------------------------------------------------------ */
const char *subm_session_id(const subm_ctx_t *ctx);
const char *subm_frontend(const subm_ctx_t *ctx);     /* "smtp", "milter" */
const char *subm_hostname(const subm_ctx_t *ctx);     /* our own name */
const char *subm_client_addr(const subm_ctx_t *ctx);  /* "192.0.2.1", "2001:db8::1" */
int         subm_client_port(const subm_ctx_t *ctx);
const char *subm_client_name(const subm_ctx_t *ctx);  /* reverse name or "unknown" */
/* subm_client_sockaddr - the client address; NULL if not an IP client. */
const struct sockaddr *subm_client_sockaddr(const subm_ctx_t *ctx);
const char *subm_helo(const subm_ctx_t *ctx);
int         subm_helo_esmtp(const subm_ctx_t *ctx);
const char *subm_tls_version(const subm_ctx_t *ctx);  /* NULL without TLS */
const char *subm_tls_cipher(const subm_ctx_t *ctx);
const char *subm_tls_peer(const subm_ctx_t *ctx);     /* client cert subject */
const char *subm_auth_login(const subm_ctx_t *ctx);   /* NULL if not authenticated */
const char *subm_auth_mech(const subm_ctx_t *ctx);
const char *subm_auth_author(const subm_ctx_t *ctx);  /* MAIL AUTH= (trusted only) */
/* subm_macro - an MTA macro ("{daemon_name}", "j"); milter front-end only. */
const char *subm_macro(const subm_ctx_t *ctx, const char *name);

/* ------------------------------------------------------------------------
 * The transaction (MAIL to end of message). Outside one these return
 * NULL / 0. Strings live until the transaction ends.
 * ------------------------------------------------------------------------ */
const char *subm_txn_queue_id(const subm_ctx_t *ctx);
const char *subm_txn_sender(const subm_ctx_t *ctx);        /* "" = null sender */
/* subm_txn_sender_param - value of a MAIL parameter, "" if it has none,
 * NULL if absent. Names compare case-insensitively. */
const char *subm_txn_sender_param(const subm_ctx_t *ctx, const char *name);
/* subm_txn_rcpt_count / subm_txn_rcpt - recipients accepted so far. */
size_t      subm_txn_rcpt_count(const subm_ctx_t *ctx);
const char *subm_txn_rcpt(const subm_ctx_t *ctx, size_t i);
const char *subm_txn_rcpt_param(const subm_ctx_t *ctx, size_t i, const char *name);
/* subm_txn_header_count / subm_txn_header - header fields received so far
 * (not counting modifications). value is unfolded; valid until txn end. */
size_t      subm_txn_header_count(const subm_ctx_t *ctx);
int         subm_txn_header(const subm_ctx_t *ctx, size_t i,
                            const char **name_r, const char **value_r);
/* subm_txn_header_find - the n-th (1-based) field called name, or NULL. */
const char *subm_txn_header_find(const subm_ctx_t *ctx, const char *name, int n);
/* subm_txn_size - octets of message (header and body, CRLF) received so far. */
uint64_t    subm_txn_size(const subm_ctx_t *ctx);
/* subm_txn_body_size / subm_txn_body_read - the body received so far, only
 * at EOM or for a plugin flagged SUBM_PLUGIN_NEEDS_BODY. body_read copies up
 * to len octets from offset into buf and returns how many, or -1. */
uint64_t    subm_txn_body_size(const subm_ctx_t *ctx);
long        subm_txn_body_read(const subm_ctx_t *ctx, uint64_t offset,
                               void *buf, size_t len);

/* ------------------------------------------------------------------------
 * Modifications: recorded on the transaction in call order and applied by
 * the front-end at end of message, after the whole chain accepted EOM (the
 * smtp front-end rewrites the message it relays; the milter front-end calls
 * smfi_* in xxfi_eom). Callable from MAIL to EOM. Each returns 0, or -1 if
 * there is no transaction or an argument is malformed (CR/LF in a name or
 * value other than folding, an empty name, a header name with ':' or space).
 * Header values may be folded with "\r\n\t" or "\n\t".
 * ------------------------------------------------------------------------ */
int subm_txn_add_header(subm_ctx_t *ctx, const char *name, const char *value);
/* index 0 puts it first; past the end appends. */
int subm_txn_insert_header(subm_ctx_t *ctx, size_t index,
                           const char *name, const char *value);
/* n-th (1-based) field of that name, counted in the header as it stands
 * after the modifications recorded before this one (as the milter protocol
 * counts); value NULL deletes it; a missing field is added. */
int subm_txn_change_header(subm_ctx_t *ctx, const char *name, int n,
                           const char *value);
int subm_txn_delete_header(subm_ctx_t *ctx, const char *name, int n);
/* params: ESMTP parameters as one string ("SIZE=100 BODY=8BITMIME") or NULL */
int subm_txn_change_sender(subm_ctx_t *ctx, const char *addr, const char *params);
int subm_txn_add_rcpt(subm_ctx_t *ctx, const char *addr, const char *params);
int subm_txn_delete_rcpt(subm_ctx_t *ctx, const char *addr);
/* The first call replaces the body; later calls in the same transaction
 * append. Use CRLF line ends. */
int subm_txn_replace_body(subm_ctx_t *ctx, const void *data, size_t len);

/* ------------------------------------------------------------------------
 * Per-session and per-transaction state. Each plugin has one slot in each;
 * both start NULL. Memory from the *_alloc calls is zeroed and freed when
 * the session / transaction ends; *_on_end registers a function called then
 * (in reverse order) for resources that are not plain memory.
 * ------------------------------------------------------------------------ */
void **subm_session_slot(subm_ctx_t *ctx);
void **subm_txn_slot(subm_ctx_t *ctx);        /* NULL outside a transaction */
void  *subm_session_alloc(subm_ctx_t *ctx, size_t size);
void  *subm_txn_alloc(subm_ctx_t *ctx, size_t size);
char  *subm_txn_strdup(subm_ctx_t *ctx, const char *s);
int    subm_session_on_end(subm_ctx_t *ctx, void (*fn)(void *), void *arg);
int    subm_txn_on_end(subm_ctx_t *ctx, void (*fn)(void *), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* SUBMILTER_PLUGIN_H */
