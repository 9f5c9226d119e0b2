/*
 * TLS for client connections: OpenSSL 3 over two memory BIOs, so the event loop does all socket
 * I/O itself and the session only turns ciphertext into plaintext and back.
 */
#include "CGatewayShims.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static void gw_tls_error_text(char *err, size_t err_len, const char *what) {
    if (err == NULL || err_len == 0) return;
    unsigned long e = ERR_get_error();
    char reason[256] = "";
    if (e != 0) ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, err_len, "%s%s%s", what, e != 0 ? ": " : "", reason);
    ERR_clear_error();
}

/* The server's preference: h2 (when the context offers it), then http/1.1; nothing chosen when
 * the client offers neither. `arg` is non-NULL when h2 is offered. */
static int gw_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    static const unsigned char both[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    const unsigned char *server = arg != NULL ? both : http11;
    unsigned int server_len = arg != NULL ? sizeof both : sizeof http11;
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, server, server_len, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

int gw_tls_alpn_is_h2(SSL *ssl) {
    const unsigned char *proto = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &proto, &len);
    return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

SSL_CTX *gw_tls_server_ctx_new(const char *cert_file, const char *key_file, int min_tls13, int offer_h2,
                               char *err, size_t err_len) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        gw_tls_error_text(err, err_len, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, min_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, gw_alpn_select, offer_h2 ? (void *)1 : NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        gw_tls_error_text(err, err_len, "cannot use the certificate file");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        int mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        gw_tls_error_text(err, err_len, mismatch ? "the key does not match the certificate" : "cannot use the key file");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        gw_tls_error_text(err, err_len, "the key does not match the certificate");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void gw_tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

SSL *gw_tls_session_new(SSL_CTX *ctx) {
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) return NULL;
    BIO *in = BIO_new(BIO_s_mem());
    BIO *out = BIO_new(BIO_s_mem());
    if (in == NULL || out == NULL) {
        BIO_free(in);
        BIO_free(out);
        SSL_free(ssl);
        return NULL;
    }
    /* An empty input BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(in, -1);
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(ssl, in, out);
    SSL_set_accept_state(ssl);
    return ssl;
}

SSL_CTX *gw_tls_client_ctx_new(const char *ca_file, char *err, size_t err_len) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        gw_tls_error_text(err, err_len, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* The gateway speaks HTTP/1.1 to what it connects to: said, for servers that want ALPN. */
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, http11, sizeof http11);
    int loaded = ca_file != NULL && ca_file[0] != 0 ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                                    : SSL_CTX_set_default_verify_paths(ctx);
    if (loaded != 1) {
        gw_tls_error_text(err, err_len, ca_file != NULL && ca_file[0] != 0 ? "cannot load the CA file" : "cannot load the system's CA store");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL *gw_tls_client_session_new(SSL_CTX *ctx, const char *host) {
    SSL *ssl = gw_tls_session_new(ctx);
    if (ssl == NULL) return NULL;
    SSL_set_connect_state(ssl);
    /* An address is checked against the certificate's IP entries and sent without SNI
       (RFC 6066 3: literal addresses are not server names). */
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1
                   : gw_tls_client_set_host(ssl, host);
    /* A wildcard stands for a whole label ("*.example.com"), never part of one ("f*.example.com"). */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

long gw_tls_verify_result(SSL *ssl) { return SSL_get_verify_result(ssl); }

const char *gw_tls_verify_text(long result) { return X509_verify_cert_error_string(result); }

void gw_tls_session_free(SSL *ssl) { SSL_free(ssl); }

int gw_tls_feed(SSL *ssl, const void *data, size_t len) {
    size_t written = 0;
    return BIO_write_ex(SSL_get_rbio(ssl), data, len, &written) == 1 && written == len;
}

static int gw_tls_status(SSL *ssl, int rc) {
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return GW_TLS_WANT_READ;
    case SSL_ERROR_ZERO_RETURN:
        return GW_TLS_CLOSED;
    default:
        ERR_clear_error();
        return GW_TLS_ERROR;
    }
}

int gw_tls_read(SSL *ssl, void *buf, size_t len, size_t *n) {
    ERR_clear_error();
    int rc = SSL_read_ex(ssl, buf, len, n);
    return rc == 1 ? GW_TLS_OK : gw_tls_status(ssl, rc);
}

int gw_tls_handshake(SSL *ssl) {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    return rc == 1 ? GW_TLS_OK : gw_tls_status(ssl, rc);
}

int gw_tls_write(SSL *ssl, const void *buf, size_t len, size_t *n) {
    ERR_clear_error();
    int rc = SSL_write_ex(ssl, buf, len, n);
    return rc == 1 ? GW_TLS_OK : gw_tls_status(ssl, rc);
}

size_t gw_tls_pending(SSL *ssl, const void **data) {
    char *p = NULL;
    long len = BIO_get_mem_data(SSL_get_wbio(ssl), &p);
    *data = p;
    return len > 0 ? (size_t)len : 0;
}

void gw_tls_consume(SSL *ssl, size_t n) {
    /* A memory BIO has no skip: reading is the way to drop (BIO_reset would clear its whole
       allocation, however little was pending). */
    BIO *out = SSL_get_wbio(ssl);
    char sink[16384];
    while (n > 0) {
        size_t step = n < sizeof sink ? n : sizeof sink;
        size_t got = 0;
        if (BIO_read_ex(out, sink, step, &got) != 1 || got == 0) break;
        n -= got;
    }
}

int gw_tls_has_buffered_input(SSL *ssl) {
    return SSL_pending(ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0;
}

int gw_tls_is_quiet(SSL *ssl) {
    if (BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0 || SSL_has_pending(ssl)) return 0;
    return SSL_in_before(ssl) || SSL_is_init_finished(ssl);
}

void gw_tls_shutdown(SSL *ssl) {
    ERR_clear_error();
    if (SSL_is_init_finished(ssl)) (void)SSL_shutdown(ssl);
    ERR_clear_error();
}

const char *gw_tls_version(SSL *ssl) {
    return SSL_is_init_finished(ssl) ? SSL_get_version(ssl) : "";
}

int gw_tls_self_signed(const char *cert_file, const char *key_file, const char *host, int days) {
    int ok = 0;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    FILE *f = NULL;
    int fd = -1;
    if (key == NULL || cert == NULL) goto done;
    X509_set_version(cert, 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) goto done;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    if (bn == NULL) goto done;
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0);
    X509_set_issuer_name(cert, name);
    char san[300];
    struct in6_addr a6;
    struct in_addr a4;
    int is_ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
    snprintf(san, sizeof san, "%s:%s", is_ip ? "IP" : "DNS", host);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    if (ext == NULL) goto done;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:FALSE");
    if (ext != NULL) { X509_add_ext(cert, ext, -1); X509_EXTENSION_free(ext); }
    if (X509_sign(cert, key, EVP_sha256()) == 0) goto done;

    fd = open(key_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) goto done;
    f = fdopen(fd, "w");
    if (f == NULL) goto done;
    fd = -1;
    if (PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1) goto done;
    if (fclose(f) != 0) { f = NULL; goto done; }
    f = fopen(cert_file, "w");
    if (f == NULL) goto done;
    if (PEM_write_X509(f, cert) != 1) goto done;
    if (fclose(f) != 0) { f = NULL; goto done; }
    f = NULL;
    ok = 1;
done:
    if (f != NULL) fclose(f);
    if (fd >= 0) close(fd);
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

int gw_tls_client_set_host(SSL *ssl, const char *host) {
    return SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
}

int gw_tls_ctx_set_versions(SSL_CTX *ctx, int min_version, int max_version) {
    return SSL_CTX_set_min_proto_version(ctx, min_version) == 1 && SSL_CTX_set_max_proto_version(ctx, max_version) == 1;
}
