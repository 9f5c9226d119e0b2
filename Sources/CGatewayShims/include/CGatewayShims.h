/*
 * CGatewayShims: the only C in the project.
 *
 * Brings OpenSSL 3, nghttp2 and the Linux event headers into Swift, and wraps what Swift cannot
 * call directly: macros, variadic functions, OSSL_PARAM arrays and the packed epoll_event.
 * Every wrapper is a thin, allocation-free pass-through; policy lives in Swift.
 */
#ifndef CGATEWAYSHIMS_H
#define CGATEWAYSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <termios.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <nghttp2/nghttp2.h>

/* ---------------------------------------------------------------- HMAC (EVP_MAC) */

/// A keyed HMAC context: the key schedule is done once here, and every token after that only
/// re-initialises it with gw_hmac_compute (EVP_MAC_init(ctx, NULL, 0, NULL)).
/// `digest` is "SHA256", "SHA384" or "SHA512". NULL on failure.
EVP_MAC_CTX *gw_hmac_new(const char *digest, const uint8_t *key, size_t key_len);
void gw_hmac_free(EVP_MAC_CTX *ctx);
/// MAC of `data` into `out`; returns the MAC length, or -1 on failure.
int gw_hmac_compute(EVP_MAC_CTX *ctx, const void *data, size_t len, uint8_t *out, size_t out_cap);

/// SHA-256/384/512 by name into `out`; returns the digest length or -1.
int gw_digest(const char *name, const void *data, size_t len, uint8_t *out, size_t out_cap);

/// Constant-time equality of two buffers of the same length: 1 equal, 0 not.
int gw_const_time_equal(const void *a, const void *b, size_t len);

/// Cryptographically secure random bytes: 1 on success.
int gw_random_bytes(uint8_t *out, size_t len);

/* ---------------------------------------------------------------- public-key verification */

/// RSA public key from big-endian modulus and exponent (JWK `n`, `e`). NULL on failure.
EVP_PKEY *gw_pkey_rsa_new(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len);
/// EC public key from the affine coordinates (JWK `x`, `y`) on the named curve
/// ("P-256", "P-384"). NULL on failure or when the point is not on the curve.
EVP_PKEY *gw_pkey_ec_new(const char *curve, const uint8_t *x, size_t x_len,
                         const uint8_t *y, size_t y_len);
/// Public key from a PEM SubjectPublicKeyInfo. NULL on failure.
EVP_PKEY *gw_pkey_from_pem(const char *pem, size_t len);
/// EVP_PKEY_get_base_id: EVP_PKEY_RSA or EVP_PKEY_EC.
int gw_pkey_type(const EVP_PKEY *key);
/// Key size in bits.
int gw_pkey_bits(const EVP_PKEY *key);
void gw_pkey_free(EVP_PKEY *key);

/// RSASSA-PKCS1-v1_5 verification (RS256/384/512): 1 valid, 0 not.
int gw_verify_rsa_pkcs1(EVP_PKEY *key, const char *digest, const void *data, size_t len,
                        const uint8_t *sig, size_t sig_len);
/// ECDSA verification of a JWS signature (raw r || s, each `sig_len / 2` bytes, RFC 7518
/// section 3.4), converted here to the DER form libcrypto expects: 1 valid, 0 not.
int gw_verify_ecdsa_raw(EVP_PKEY *key, const char *digest, const void *data, size_t len,
                        const uint8_t *sig, size_t sig_len);

/* ---------------------------------------------------------------- password hashing */

/// scrypt (RFC 7914) with N = 2^log_n: 1 on success.
int gw_scrypt(const void *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
              unsigned log_n, unsigned r, unsigned p, uint8_t *out, size_t out_len);
/// PBKDF2-HMAC-SHA256: 1 on success.
int gw_pbkdf2_sha256(const void *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                     unsigned iterations, uint8_t *out, size_t out_len);

/* ---------------------------------------------------------------- Linux event wrappers */

/// epoll_ctl with the 64-bit user word (fd and generation packed by the caller).
int gw_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// epoll_wait into a caller-owned array of `gw_epoll_event_size()`-byte slots.
int gw_epoll_wait(int epfd, void *events, int max, int timeout_ms);
size_t gw_epoll_event_size(void);
uint32_t gw_epoll_event_events(const void *events, int index);
uint64_t gw_epoll_event_data(const void *events, int index);

/// signalfd for the given signals (blocked in the calling thread first); -1 on failure.
int gw_signalfd_for(const int *signals, int count);
/// Blocks the given signals in the calling thread (its children threads inherit the mask).
int gw_block_signals(const int *signals, int count);
/// Reads one siginfo from a signalfd: the signal number, 0 when none is ready, -1 on error.
int gw_signalfd_read(int fd);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (a GNU extension the Swift importer does not see).
int gw_accept(int fd, struct sockaddr *addr, socklen_t *len);
/* A blocking accept4 with close-on-exec (threads off the loops). */
int gw_accept_blocking(int fd);

/// Sends `len` bytes with `n` descriptors attached (SCM_RIGHTS) on a unix stream socket: the
/// bytes sent, or -1 with errno.
long gw_send_fds(int sock, const int *fds, int n, const void *data, size_t len);
/// Receives up to `len` bytes and up to `max` descriptors (made close-on-exec; *n how many):
/// the bytes received, or -1 with errno. Descriptors beyond `max` are closed, never leaked.
long gw_recv_fds(int sock, int *fds, int max, int *n, void *data, size_t len);
/// The pid and uid of the process at the other end of a unix socket (SO_PEERCRED); 0 on success.
int gw_peer_credentials(int sock, int *pid, unsigned *uid);

/// Turns terminal echo off (0) or back on (1) for fd; returns the previous state or -1.
int gw_set_echo(int fd, int on);

/* ---------------------------------------------------------------- TLS (tls.c) */

/// A server context from a PEM certificate chain (leaf first) and its private key. TLS 1.2 at
/// least (`min_tls13`: 1.3 only), no renegotiation, no compression, ALPN "h2" (when `offer_h2`)
/// then "http/1.1" chosen in that order when offered (nothing chosen otherwise), SSL buffers
/// released while idle. NULL on failure with the reason in `err`.
SSL_CTX *gw_tls_server_ctx_new(const char *cert_file, const char *key_file, int min_tls13, int offer_h2,
                               char *err, size_t err_len);
/// 1 when ALPN chose "h2" for this session.
int gw_tls_alpn_is_h2(SSL *ssl);
void gw_tls_ctx_free(SSL_CTX *ctx);

/// A server-side session over two memory BIOs (ciphertext in, ciphertext out). NULL on failure.
SSL *gw_tls_session_new(SSL_CTX *ctx);
void gw_tls_session_free(SSL *ssl);

enum {
    GW_TLS_OK = 0,
    /// More ciphertext from the peer is needed.
    GW_TLS_WANT_READ = 1,
    /// The peer sent close_notify.
    GW_TLS_CLOSED = 2,
    /// A protocol error or a failed handshake: the connection is done.
    GW_TLS_ERROR = -1,
};

/// Hands ciphertext read from the socket to the session; 1 on success.
int gw_tls_feed(SSL *ssl, const void *data, size_t len);
/// Decrypts into `buf` (handshaking first when needed); `*n` bytes on GW_TLS_OK.
int gw_tls_read(SSL *ssl, void *buf, size_t len, size_t *n);
/// Encrypts from `buf`; `*n` bytes taken on GW_TLS_OK.
int gw_tls_write(SSL *ssl, const void *buf, size_t len, size_t *n);
/// Ciphertext waiting to be sent, and where it starts.
size_t gw_tls_pending(SSL *ssl, const void **data);
/// Drops `n` bytes of the waiting ciphertext (they were sent).
void gw_tls_consume(SSL *ssl, size_t n);
/// Plaintext or ciphertext held inside the session that a read would return without new input.
int gw_tls_has_buffered_input(SSL *ssl);
/* Nothing of a handshake or a record is held below the application (no ciphertext waiting, no
   record read in part, no handshake begun and unfinished): closing the connection cuts nothing
   short. */
int gw_tls_is_quiet(SSL *ssl);
/// Queues close_notify.
void gw_tls_shutdown(SSL *ssl);
/// The negotiated protocol version's name ("TLSv1.3"), or "" before the handshake.
const char *gw_tls_version(SSL *ssl);

/// Writes a self-signed P-256 certificate for `host` (also as a subjectAltName, DNS or IP)
/// valid for `days`, and its key (mode 0600), as PEM. 1 on success.
int gw_tls_self_signed(const char *cert_file, const char *key_file, const char *host, int days);

/// A client context: TLS 1.2 or later, the peer verified against `ca_file` (PEM; NULL or "" for
/// the system's store). NULL with `err` filled on failure.
SSL_CTX *gw_tls_client_ctx_new(const char *ca_file, char *err, size_t err_len);
/// A client session over memory BIOs, as gw_tls_session_new, verifying `host`: a DNS name (also
/// sent as SNI) or an IP address (matched against the certificate's IP entries, no SNI).
SSL *gw_tls_client_session_new(SSL_CTX *ctx, const char *host);
/// X509_V_OK (0), or why the peer's certificate was refused (X509_V_ERR_*).
long gw_tls_verify_result(SSL *ssl);
/// OpenSSL's words for a verify result ("certificate has expired").
const char *gw_tls_verify_text(long result);
/// Advances the handshake: GW_TLS_OK once done, GW_TLS_WANT_READ while it needs the peer.
int gw_tls_handshake(SSL *ssl);

/// Client side, for tests and tools: SNI and the version range (0: library default).
int gw_tls_client_set_host(SSL *ssl, const char *host);
int gw_tls_ctx_set_versions(SSL_CTX *ctx, int min_version, int max_version);

#endif
