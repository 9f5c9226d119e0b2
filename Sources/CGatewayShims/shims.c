/*
 * Thin wrappers for CGatewayShims.h. No policy, no allocation beyond what libcrypto does.
 */
#define _GNU_SOURCE
#include "CGatewayShims.h"

#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/kdf.h>

/* ---------------------------------------------------------------- HMAC */

EVP_MAC_CTX *gw_hmac_new(const char *digest, const uint8_t *key, size_t key_len) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (ctx == NULL) return NULL;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, key, key_len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void gw_hmac_free(EVP_MAC_CTX *ctx) { EVP_MAC_CTX_free(ctx); }

int gw_hmac_compute(EVP_MAC_CTX *ctx, const void *data, size_t len, uint8_t *out, size_t out_cap) {
    size_t out_len = 0;
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1) return -1;
    if (EVP_MAC_update(ctx, data, len) != 1) return -1;
    if (EVP_MAC_final(ctx, out, &out_len, out_cap) != 1) return -1;
    return (int)out_len;
}

int gw_digest(const char *name, const void *data, size_t len, uint8_t *out, size_t out_cap) {
    const EVP_MD *md = EVP_get_digestbyname(name);
    unsigned int out_len = 0;
    if (md == NULL || (size_t)EVP_MD_get_size(md) > out_cap) return -1;
    if (EVP_Digest(data, len, out, &out_len, md, NULL) != 1) return -1;
    return (int)out_len;
}

int gw_const_time_equal(const void *a, const void *b, size_t len) {
    return CRYPTO_memcmp(a, b, len) == 0 ? 1 : 0;
}

int gw_random_bytes(uint8_t *out, size_t len) {
    return RAND_bytes(out, (int)len) == 1 ? 1 : 0;
}

/* ---------------------------------------------------------------- public keys */

EVP_PKEY *gw_pkey_rsa_new(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len) {
    EVP_PKEY *key = NULL;
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (bn_n == NULL || bn_e == NULL || bld == NULL) goto done;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e)) goto done;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) goto done;
    if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) key = NULL;
done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return key;
}

EVP_PKEY *gw_pkey_ec_new(const char *curve, const uint8_t *x, size_t x_len,
                         const uint8_t *y, size_t y_len) {
    /* Uncompressed point: 0x04 || X || Y, each coordinate padded to the field size. */
    size_t field = strcmp(curve, "P-256") == 0 ? 32 : strcmp(curve, "P-384") == 0 ? 48 : 0;
    const char *group = field == 32 ? "prime256v1" : "secp384r1";
    uint8_t point[1 + 2 * 48];
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (field == 0 || x_len != field || y_len != field) return NULL;
    point[0] = 0x04;
    memcpy(point + 1, x, field);
    memcpy(point + 1 + field, y, field);
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * field);
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        key = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    if (key != NULL) {
        /* fromdata does not always check the point; refuse one that is not on the curve. */
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        int ok = check != NULL && EVP_PKEY_public_check(check) == 1;
        EVP_PKEY_CTX_free(check);
        if (!ok) { EVP_PKEY_free(key); key = NULL; }
    }
    return key;
}

EVP_PKEY *gw_pkey_from_pem(const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) return NULL;
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return key;
}

int gw_pkey_type(const EVP_PKEY *key) { return EVP_PKEY_get_base_id(key); }
int gw_pkey_bits(const EVP_PKEY *key) { return EVP_PKEY_get_bits(key); }
void gw_pkey_free(EVP_PKEY *key) { EVP_PKEY_free(key); }

static int verify_der(EVP_PKEY *key, const char *digest, const void *data, size_t len,
                      const uint8_t *sig, size_t sig_len) {
    const EVP_MD *md = EVP_get_digestbyname(digest);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = 0;
    if (md != NULL && ctx != NULL &&
        EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1 &&
        EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1) {
        ok = 1;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

int gw_verify_rsa_pkcs1(EVP_PKEY *key, const char *digest, const void *data, size_t len,
                        const uint8_t *sig, size_t sig_len) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) return 0;
    return verify_der(key, digest, data, len, sig, sig_len);
}

int gw_verify_ecdsa_raw(EVP_PKEY *key, const char *digest, const void *data, size_t len,
                        const uint8_t *sig, size_t sig_len) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || sig_len == 0 || sig_len % 2 != 0) return 0;
    size_t half = sig_len / 2;
    /* The raw signature must be exactly twice the group's byte size. */
    if ((size_t)((EVP_PKEY_get_bits(key) + 7) / 8) != half) return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
    unsigned char *der = NULL;
    int ok = 0;
    if (es == NULL || r == NULL || s == NULL) { BN_free(r); BN_free(s); goto done; }
    ECDSA_SIG_set0(es, r, s); /* es owns r and s now */
    int der_len = i2d_ECDSA_SIG(es, &der);
    if (der_len > 0) ok = verify_der(key, digest, data, len, der, (size_t)der_len);
done:
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

/* ---------------------------------------------------------------- passwords */

int gw_scrypt(const void *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
              unsigned log_n, unsigned r, unsigned p, uint8_t *out, size_t out_len) {
    if (log_n < 1 || log_n > 30) return 0;
    uint64_t n = (uint64_t)1 << log_n;
    /* scrypt needs 128 * r * (N + p + 2) bytes; OpenSSL's default cap (32 MiB) is too small
     * for N = 2^15, r = 8, so the cap is set from the parameters (at most 1 GiB). */
    uint64_t need = 128ull * r * (n + p + 2);
    if (need > (1ull << 30)) return 0;
    return EVP_PBE_scrypt((const char *)pass, pass_len, salt, salt_len, n, r, p,
                          need + 4096, out, out_len) == 1 ? 1 : 0;
}

int gw_pbkdf2_sha256(const void *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                     unsigned iterations, uint8_t *out, size_t out_len) {
    return PKCS5_PBKDF2_HMAC((const char *)pass, (int)pass_len, salt, (int)salt_len,
                             (int)iterations, EVP_sha256(), (int)out_len, out) == 1 ? 1 : 0;
}

/* ---------------------------------------------------------------- epoll, signals, tty */

int gw_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int gw_epoll_wait(int epfd, void *events, int max, int timeout_ms) {
    return epoll_wait(epfd, (struct epoll_event *)events, max, timeout_ms);
}

size_t gw_epoll_event_size(void) { return sizeof(struct epoll_event); }

uint32_t gw_epoll_event_events(const void *events, int index) {
    return ((const struct epoll_event *)events)[index].events;
}

uint64_t gw_epoll_event_data(const void *events, int index) {
    return ((const struct epoll_event *)events)[index].data.u64;
}

static void fill_set(sigset_t *set, const int *signals, int count) {
    sigemptyset(set);
    for (int i = 0; i < count; i++) sigaddset(set, signals[i]);
}

int gw_block_signals(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int gw_signalfd_for(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int gw_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
}

int gw_set_echo(int fd, int on) {
    struct termios t;
    if (tcgetattr(fd, &t) != 0) return -1;
    int was = (t.c_lflag & ECHO) ? 1 : 0;
    if (on) t.c_lflag |= ECHO; else t.c_lflag &= ~(tcflag_t)ECHO;
    if (tcsetattr(fd, TCSAFLUSH, &t) != 0) return -1;
    return was;
}

int gw_accept(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int gw_accept_blocking(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}

int gw_peer_credentials(int sock, int *pid, unsigned *uid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    return 0;
}

#define GW_MAX_PASSED_FDS 250

long gw_send_fds(int sock, const int *fds, int n, const void *data, size_t len) {
    if (n < 0 || n > GW_MAX_PASSED_FDS || len == 0) { errno = EINVAL; return -1; }
    union { char buf[CMSG_SPACE(sizeof(int) * GW_MAX_PASSED_FDS)]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    ssize_t r;
    do { r = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (r < 0 && errno == EINTR);
    return (long)r;
}

long gw_recv_fds(int sock, int *fds, int max, int *n, void *data, size_t len) {
    union { char buf[CMSG_SPACE(sizeof(int) * GW_MAX_PASSED_FDS)]; struct cmsghdr align; } control;
    struct iovec iov = { .iov_base = data, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    *n = 0;
    ssize_t r;
    do { r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *got = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            if (*n < max) fds[(*n)++] = got[i]; else close(got[i]);
        }
    }
    return (long)r;
}
