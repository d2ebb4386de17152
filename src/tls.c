/*
** TLS (OpenSSL 3) for streams: contexts made from a settings table, and a
** TLS session over a stream's non-blocking socket.
**
** A session reads and writes the socket through a BIO of its own rather
** than OpenSSL's socket BIO: sends pass MSG_NOSIGNAL (a peer's reset must
** not raise SIGPIPE), and bytes the stream had already received before
** start_tls are read first. The stream drives the session like a socket:
** tls_read and tls_write return what recv and send would, with errno
** EAGAIN when OpenSSL waits for the socket (tls_wants_write tells which
** way) and EPROTO when TLS failed (tls_push_error raises that).
*/
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "lasync.h"

struct TlsCtx {
  OBJ_HEAD;                      /* K_TLSCTX; loop unused */
  SSL_CTX *ctx;
  signed char verify;            /* -1: the role's default */
  unsigned char alpn[256];       /* ALPN protocols, in wire format */
  size_t alpnlen;
};

struct Tls {
  SSL *ssl;
  int fd;
  int sys_err;                   /* errno of the socket's failure */
  unsigned char want_write;      /* the last EAGAIN waits to write */
  unsigned long err;             /* OpenSSL's error of the failure */
  long verify_result;            /* X509_V_OK or why the peer failed */
  char *pre;                     /* received before start_tls: read first */
  size_t preoff, prelen;
  double timeout, deadline;      /* of the handshake */
};

#define checkctx(L, i) ((TlsCtx *)lasync_checkobj(L, i, K_TLSCTX, "SSL context"))

/* ---------- the BIO: the socket, without SIGPIPE ---------- */

static int bio_read(BIO *b, char *buf, int len) {
  Tls *t = BIO_get_data(b);
  ssize_t n;
  BIO_clear_retry_flags(b);
  if (t->preoff < t->prelen) {
    size_t k = t->prelen - t->preoff;
    if (k > (size_t)len) k = (size_t)len;
    memcpy(buf, t->pre + t->preoff, k);
    if ((t->preoff += k) == t->prelen) {
      free(t->pre);
      t->pre = NULL;
      t->preoff = t->prelen = 0;
    }
    return (int)k;
  }
  do n = recv(t->fd, buf, (size_t)len, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  else if (n < 0) t->sys_err = errno;
  return (int)n;
}

static int bio_write(BIO *b, const char *buf, int len) {
  Tls *t = BIO_get_data(b);
  ssize_t n;
  BIO_clear_retry_flags(b);
  do n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
  else if (n < 0) t->sys_err = errno;
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b; (void)num; (void)ptr;
  return cmd == BIO_CTRL_FLUSH;  /* nothing is buffered here */
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

/* Made once per process and kept: sessions of every state share it. */
static BIO_METHOD *bio_method(void) {
  static BIO_METHOD *m;
  if (m == NULL && (m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                     "lasync socket")) != NULL) {
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
  }
  return m;
}

/* ---------- contexts ---------- */

/* Raise a bad setting's message: it names the argument already, so no
** position is added (that of the caller's caller would mislead). */
static int fail(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* Why the failed call failed: the errno of a system call (a file that
** cannot be opened) if one is queued, else OpenSSL's last reason (for a
** missing file that is only "system lib"). */
static const char *ssl_reason(void) {
  unsigned long e, last = 0;
  while ((e = ERR_get_error()) != 0) {
    if (ERR_SYSTEM_ERROR(e)) return strerror(ERR_GET_REASON(e));
    last = e;
  }
  return last ? ERR_reason_error_string(last) : NULL;
}

/* Raise "what: msg 'arg' (why)". */
static int ctx_fail(lua_State *L, const char *what, const char *msg,
                    const char *arg) {
  const char *why = ssl_reason();
  ERR_clear_error();
  return fail(L, "%s: %s '%s' (%s)", what, msg, arg,
              why ? why : "unknown error");
}

/* settings[key] as a string or nil; anything else is an error. */
static const char *opt_string(lua_State *L, int sidx, const char *key,
                              const char *what) {
  const char *v = NULL;
  lua_getfield(L, sidx, key);
  if (lua_isnil(L, -1)) v = NULL;
  else if (lua_type(L, -1) == LUA_TSTRING) v = lua_tostring(L, -1);
  else fail(L, "%s: %s must be a string, got %s", what, key,
                  luaL_typename(L, -1));
  lua_pop(L, 1);  /* the table keeps the string */
  return v;
}

/* settings.alpn: a list of protocol names, into wire format. */
static void ctx_alpn(lua_State *L, TlsCtx *c, int sidx, const char *what) {
  lua_Integer i, n;
  if (lua_getfield(L, sidx, "alpn") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    fail(L, "%s: alpn must be a list of strings, got %s", what,
               luaL_typename(L, -1));
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *p;
    lua_geti(L, -1, i);
    p = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || len == 0 || len > 255 ||
        c->alpnlen + 1 + len > sizeof c->alpn)
      fail(L, "%s: alpn[%d] must be a protocol name of 1 to 255 "
                 "bytes (255 in all)", what, (int)i);
    c->alpn[c->alpnlen++] = (unsigned char)len;
    memcpy(c->alpn + c->alpnlen, p, len);
    c->alpnlen += len;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static int version_of(lua_State *L, int sidx, const char *key,
                      const char *what) {
  const char *v = opt_string(L, sidx, key, what);
  if (v == NULL) return 0;
  if (strcmp(v, "TLSv1.2") == 0) return TLS1_2_VERSION;
  if (strcmp(v, "TLSv1.3") == 0) return TLS1_3_VERSION;
  return fail(L, "%s: %s must be \"TLSv1.2\" or \"TLSv1.3\", got "
                    "\"%s\"", what, key, v);
}

static const char *const setting_names[] = {
  "verify", "cafile", "capath", "certfile", "keyfile", "alpn", "ciphers",
  "min_version", "max_version", NULL
};

static void check_setting_names(lua_State *L, int sidx, const char *what) {
  lua_pushnil(L);
  while (lua_next(L, sidx)) {
    int i;
    lua_pop(L, 1);
    for (i = 0; setting_names[i]; i++)
      if (lua_type(L, -1) == LUA_TSTRING &&
          strcmp(lua_tostring(L, -1), setting_names[i]) == 0) break;
    if (setting_names[i] == NULL)
      fail(L, "%s: unknown TLS setting '%s'", what,
                 luaL_tolstring(L, -1, NULL));
  }
}

/* Trust: the files given, or the system's store (ca-certificates). */
static void ctx_trust(lua_State *L, TlsCtx *c, int sidx, const char *what) {
  const char *cafile = sidx ? opt_string(L, sidx, "cafile", what) : NULL;
  const char *capath = sidx ? opt_string(L, sidx, "capath", what) : NULL;
  if (cafile || capath) {
    if (!SSL_CTX_load_verify_locations(c->ctx, cafile, capath))
      ctx_fail(L, what, cafile ? "cannot load cafile" : "cannot load capath",
               cafile ? cafile : capath);
  } else if (!SSL_CTX_set_default_verify_paths(c->ctx))
    ctx_fail(L, what, "cannot load", "the system's certificates");
}

static void ctx_cert(lua_State *L, TlsCtx *c, int sidx, const char *what) {
  const char *cert = opt_string(L, sidx, "certfile", what);
  const char *key = opt_string(L, sidx, "keyfile", what);
  if (cert == NULL) {
    if (key) fail(L, "%s: keyfile given without certfile", what);
    return;
  }
  if (!SSL_CTX_use_certificate_chain_file(c->ctx, cert))
    ctx_fail(L, what, "cannot load certfile", cert);
  /* checks that the key is the certificate's */
  if (!SSL_CTX_use_PrivateKey_file(c->ctx, key ? key : cert, SSL_FILETYPE_PEM))
    ctx_fail(L, what, "cannot load keyfile", key ? key : cert);
}

/* A server picks the first of its protocols that the client offers; none
** in common: the handshake goes on without ALPN. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  TlsCtx *c = arg;
  unsigned char *o;
  (void)ssl;
  if (SSL_select_next_proto(&o, outlen, c->alpn, (unsigned int)c->alpnlen,
                            in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}

static void ctx_settings(lua_State *L, TlsCtx *c, int sidx, const char *what) {
  const char *ciphers;
  int minv, maxv;
  check_setting_names(L, sidx, what);
  if (lua_getfield(L, sidx, "verify") != LUA_TNIL) {
    if (!lua_isboolean(L, -1))
      fail(L, "%s: verify must be a boolean, got %s", what,
                 luaL_typename(L, -1));
    c->verify = (signed char)lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  ctx_trust(L, c, sidx, what);
  ctx_cert(L, c, sidx, what);
  ctx_alpn(L, c, sidx, what);
  if ((ciphers = opt_string(L, sidx, "ciphers", what)) &&
      !SSL_CTX_set_cipher_list(c->ctx, ciphers))
    ctx_fail(L, what, "no cipher matches", ciphers);
  minv = version_of(L, sidx, "min_version", what);
  maxv = version_of(L, sidx, "max_version", what);
  if (minv) SSL_CTX_set_min_proto_version(c->ctx, minv);
  if (maxv) SSL_CTX_set_max_proto_version(c->ctx, maxv);
}

static int ctx_gc(lua_State *L) {
  TlsCtx *c = lasync_checkobj(L, 1, K_TLSCTX, "SSL context");
  SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  lua_pushfstring(L, "<SSLContext %p>",
                  lasync_checkobj(L, 1, K_TLSCTX, "SSL context"));
  return 1;
}

/* Push a new context from the settings table at sidx (0: the defaults);
** what names the argument in errors. */
static TlsCtx *ctx_new(lua_State *L, int sidx, const char *what) {
  TlsCtx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->magic = LASYNC_MAGIC;
  c->kind = K_TLSCTX;
  c->verify = -1;
  lasync_setmt(L, lasync_mod(L), K_TLSCTX);
  if ((c->ctx = SSL_CTX_new(TLS_method())) == NULL)
    fail(L, "%s: cannot make an SSL context (out of memory)", what);
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  /* the output buffer may move (realloc) and grow between retries; an
  ** idle session gives its 34 KiB of record buffers back */
  SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                   SSL_MODE_RELEASE_BUFFERS);
  /* a peer closing without close_notify is an EOF, as for HTTP clients */
  SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
                      SSL_OP_NO_RENEGOTIATION);
  if (sidx) ctx_settings(L, c, sidx, what);
  else ctx_trust(L, c, 0, what);
  if (c->alpnlen == 0) return c;
  SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select, c);
  if (SSL_CTX_set_alpn_protos(c->ctx, c->alpn, (unsigned int)c->alpnlen))
    fail(L, "%s: cannot set alpn (out of memory)", what);
  return c;
}

static const char default_key = 0;

/* The context of ssl = true, made once per state. */
static TlsCtx *ctx_default(lua_State *L) {
  TlsCtx *c;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &default_key) == LUA_TUSERDATA)
    return lua_touserdata(L, -1);
  lua_pop(L, 1);
  c = ctx_new(L, 0, "ssl");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &default_key);
  return c;
}

/* The context that the value at idx stands for (true, a settings table or
** a context), pushed. A server's needs a certificate. */
TlsCtx *tls_checkctx(lua_State *L, int idx, int server, const char *what) {
  TlsCtx *c;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TTABLE) c = ctx_new(L, idx, what);
  else if (lua_toboolean(L, idx) && lua_isboolean(L, idx))
    c = ctx_default(L);
  else if ((c = lasync_toobj(L, idx, K_TLSCTX)) != NULL) {
    if (c->ctx == NULL)  /* its __gc was called by hand */
      fail(L, "%s: the SSL context is freed", what);
    lua_pushvalue(L, idx);
  } else {
    fail(L, "%s: true, a table of TLS settings or an SSL context "
               "expected, got %s", what, luaL_typename(L, idx));
    return NULL;
  }
  if (server && SSL_CTX_get0_certificate(c->ctx) == NULL)
    fail(L, "%s: a server needs a certificate (certfile)", what);
  return c;
}

/* The options of start_tls at idx (nil: none), what naming them in errors:
** returns server_hostname (NULL if not given), which the table keeps, and
** sets *timeout to ssl_handshake_timeout (default 60 s). */
const char *tls_checkopts(lua_State *L, int idx, const char *what,
                          double *timeout) {
  const char *host = NULL;
  size_t len;
  *timeout = 60.0;
  if (lua_isnoneornil(L, idx)) return NULL;
  if (!lua_istable(L, idx))
    fail(L, "%s: table of options or nil expected, got %s", what,
         luaL_typename(L, idx));
  if (lua_getfield(L, idx, "server_hostname") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      fail(L, "%s.server_hostname must be a string, got %s", what,
           luaL_typename(L, -1));
    host = lua_tolstring(L, -1, &len);
    if (len == 0 || len > 253 || strlen(host) != len)
      fail(L, "%s.server_hostname must be a host name (1 to 253 bytes, "
           "no \\0)", what);
  }
  if (lua_getfield(L, idx, "ssl_handshake_timeout") != LUA_TNIL) {
    *timeout = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(*timeout > 0 && *timeout < 1e9))
      fail(L, "%s.ssl_handshake_timeout must be a positive number, got %s",
           what, lua_type(L, -1) == LUA_TNUMBER ? luaL_tolstring(L, -1, NULL)
                                                : luaL_typename(L, -1));
  }
  lua_pop(L, 2);
  return host;
}

/* core.tls_context(ssl, what, server[, opts, optswhat]) -> SSLContext: the
** context of an ssl option (true, settings or a context), checked for a
** server's use, and the options of start_tls that go with it, checked
** before a connection is made for them. */
static int l_tls_context(lua_State *L) {
  const char *what = luaL_checkstring(L, 2);
  double timeout;
  lua_settop(L, 5);
  if (!lua_isnil(L, 4)) tls_checkopts(L, 4, luaL_checkstring(L, 5), &timeout);
  tls_checkctx(L, 1, lua_toboolean(L, 3), what);
  return 1;
}

/* ---------- sessions ---------- */

static int is_ip(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

/* The client checks the name (or address) the certificate is for, and
** sends it (a name) for virtual hosting. */
static int set_peer_name(SSL *ssl, const char *host, int verify) {
  if (!is_ip(host) && !SSL_set_tlsext_host_name(ssl, host)) return 0;
  if (!verify) return 1;
  if (is_ip(host))
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
  return SSL_set1_host(ssl, host);
}

/* A session over fd with context c, as the server or a client of host
** (may be NULL when not verifying); NULL with errno when out of memory. */
Tls *tls_new(TlsCtx *c, int fd, int server, const char *host) {
  Tls *t = calloc(1, sizeof *t);
  BIO *b = NULL;
  int verify = c->verify < 0 ? !server : c->verify;
  if (t == NULL || (t->ssl = SSL_new(c->ctx)) == NULL ||
      bio_method() == NULL || (b = BIO_new(bio_method())) == NULL)
    goto fail;
  t->fd = fd;
  BIO_set_data(b, t);
  SSL_set_bio(t->ssl, b, b);
  if (server) {
    SSL_set_accept_state(t->ssl);
    if (verify)
      SSL_set_verify(t->ssl, SSL_VERIFY_PEER |
                     SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  } else {
    SSL_set_connect_state(t->ssl);
    SSL_set_verify(t->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (host && !set_peer_name(t->ssl, host, verify)) goto fail;
  }
  return t;
fail:
  if (t) SSL_free(t->ssl);
  free(t);
  ERR_clear_error();
  errno = ENOMEM;
  return NULL;
}

int tls_needs_host(TlsCtx *c) {
  return c->verify != 0;
}

void tls_free(Tls *t) {
  if (t == NULL) return;
  SSL_free(t->ssl);
  free(t->pre);
  free(t);
}

/* Bytes received before the session began: they are its first input.
** 0 when out of memory. */
int tls_preload(Tls *t, const char *p, size_t n) {
  if (n == 0) return 1;
  if ((t->pre = malloc(n)) == NULL) return 0;
  memcpy(t->pre, p, n);
  t->prelen = n;
  return 1;
}

/* What recv/send would return for OpenSSL's result r. */
static ssize_t outcome(Tls *t, int r) {
  int e = SSL_get_error(t->ssl, r);
  t->want_write = e == SSL_ERROR_WANT_WRITE;
  switch (e) {
  case SSL_ERROR_WANT_READ: case SSL_ERROR_WANT_WRITE:
    errno = EAGAIN;
    return -1;
  case SSL_ERROR_ZERO_RETURN:
    return 0;
  case SSL_ERROR_SYSCALL:
    if (t->sys_err == 0) return 0;  /* the socket's EOF */
    errno = t->sys_err;
    return -1;
  default:
    t->err = ERR_peek_last_error();
    t->verify_result = SSL_get_verify_result(t->ssl);
    ERR_clear_error();
    errno = EPROTO;
    return -1;
  }
}

/* 1 once the handshake is done; -1 with errno otherwise (EAGAIN: call
** again when the socket is ready; a peer closing during it is ECONNRESET). */
int tls_handshake(Tls *t) {
  int r;
  ERR_clear_error();
  if ((r = SSL_do_handshake(t->ssl)) == 1) return 1;
  if (outcome(t, r) == 0) errno = ECONNRESET;
  return -1;
}

ssize_t tls_read(Tls *t, void *buf, size_t n) {
  int r;
  ERR_clear_error();
  r = SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
  return r > 0 ? r : outcome(t, r);
}

ssize_t tls_write(Tls *t, const void *buf, size_t n) {
  int r;
  ERR_clear_error();
  r = SSL_write(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
  return r > 0 ? r : outcome(t, r);
}

/* Send close_notify if the socket takes it now; the connection closes
** anyway, so a failure is not reported. */
void tls_shutdown(Tls *t) {
  if (t->err == 0 && t->sys_err == 0 && SSL_is_init_finished(t->ssl))
    SSL_shutdown(t->ssl);
  ERR_clear_error();
}

void tls_set_timeout(Tls *t, double timeout) {
  t->timeout = timeout;
  t->deadline = lasync_now() + timeout;
}

/* The handshake's timeout; *left (unless NULL): the time left of it. */
double tls_timeout(const Tls *t, double *left) {
  if (left) *left = t->deadline - lasync_now();
  return t->timeout;
}

int tls_wants_write(const Tls *t) {
  return t->want_write;
}

/* Input OpenSSL holds already: the socket will not signal it. Decrypted
** bytes only: SSL_has_pending also counts the first part of a record
** whose rest the socket has yet to bring, and a read event made active
** for that reads nothing, and is made active again, for good. */
int tls_pending(const Tls *t) {
  return SSL_pending(t->ssl) > 0 || t->preoff < t->prelen;
}

/* Push the SSLError of the session's failure (SSLCertVerificationError
** when the peer's certificate was refused), with `reason` and, for the
** latter, `verify_code` and `verify_message`. */
void tls_push_error(lua_State *L, Tls *t) {
  const char *reason = ERR_reason_error_string(t->err);
  int cert = SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE &&
             t->verify_result != X509_V_OK &&
             ERR_GET_REASON(t->err) == SSL_R_CERTIFICATE_VERIFY_FAILED;
  const char *vmsg = X509_verify_cert_error_string(t->verify_result);
  if (reason == NULL) reason = "TLS error";
  if (cert) lua_pushfstring(L, "%s: %s", reason, vmsg);
  else lua_pushstring(L, reason);
  errors_push_newv(L, cert ? "SSLCertVerificationError" : "SSLError", -1);
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  if (cert) {
    lua_pushinteger(L, t->verify_result);
    lua_setfield(L, -2, "verify_code");
    lua_pushstring(L, vmsg);
    lua_setfield(L, -2, "verify_message");
  }
  lua_remove(L, -2);
}

/* The peer's certificate as {subject=, issuer=, pem=}, or nil. */
static int push_peercert(lua_State *L, Tls *t) {
  X509 *x = SSL_get1_peer_certificate(t->ssl);
  BIO *mem;
  char *p;
  long n;
  if (x == NULL || (mem = BIO_new(BIO_s_mem())) == NULL) {
    X509_free(x);
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 3);
  X509_NAME_print_ex(mem, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
  n = BIO_get_mem_data(mem, &p);
  lua_pushlstring(L, p, (size_t)n);
  lua_setfield(L, -2, "subject");
  (void)BIO_reset(mem);
  X509_NAME_print_ex(mem, X509_get_issuer_name(x), 0, XN_FLAG_RFC2253);
  n = BIO_get_mem_data(mem, &p);
  lua_pushlstring(L, p, (size_t)n);
  lua_setfield(L, -2, "issuer");
  (void)BIO_reset(mem);
  PEM_write_bio_X509(mem, x);
  n = BIO_get_mem_data(mem, &p);
  lua_pushlstring(L, p, (size_t)n);
  lua_setfield(L, -2, "pem");
  BIO_free(mem);
  X509_free(x);
  return 1;
}

/* get_extra_info of a TLS stream: "cipher" (name, protocol, bits),
** "tls_version", "alpn_protocol", "peercert"; 0 for other names. */
int tls_push_info(lua_State *L, Tls *t, const char *name) {
  if (strcmp(name, "cipher") == 0) {
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    if (c == NULL) return 0;
    lua_pushstring(L, SSL_CIPHER_get_name(c));
    lua_pushstring(L, SSL_CIPHER_get_version(c));
    lua_pushinteger(L, SSL_CIPHER_get_bits(c, NULL));
    return 3;
  }
  if (strcmp(name, "tls_version") == 0) {
    lua_pushstring(L, SSL_get_version(t->ssl));
    return 1;
  }
  if (strcmp(name, "alpn_protocol") == 0) {
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n == 0) return 0;
    lua_pushlstring(L, (const char *)p, n);
    return 1;
  }
  if (strcmp(name, "peercert") == 0) return push_peercert(L, t);
  return 0;
}

static const luaL_Reg ctx_meta[] = {
  {"__gc", ctx_gc},
  {"__tostring", ctx_tostring},
  {NULL, NULL}
};

static const luaL_Reg ctx_methods[] = {{NULL, NULL}};

static const luaL_Reg tls_funcs[] = {
  {"tls_context", l_tls_context},
  {NULL, NULL}
};

void tls_register(lua_State *L) {
  lasync_newmeta(L, K_TLSCTX, ctx_methods, ctx_meta);
  lasync_addfuncs(L, tls_funcs);
}
