// mbedTLS 2.28 / 3.x differences in one place, so tls.cpp and pk.cpp read the same on both.
// Include only from .cpp files of src/net (public headers keep mbedTLS types out). Each shim is
// a thin inline wrapper; the 3.x branch is compile-checked against 3.6 headers.
#pragma once

// Config header name: 2.x exposes <mbedtls/config.h>, 3.x replaced it with <mbedtls/build_info.h>.
#if __has_include(<mbedtls/build_info.h>)
#include <mbedtls/build_info.h>
#else
#include <mbedtls/config.h>
#endif
#include <mbedtls/version.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif

// 3.x marks struct fields private; the macro exists only there.
#ifndef MBEDTLS_PRIVATE
#define MBEDTLS_PRIVATE(member) member
#endif

namespace aloha::net::compat {

// 3.x with TLS 1.3 / USE_PSA needs PSA initialised before any handshake or PK operation.
// psa_crypto_init() is idempotent. Returns 0 on success.
inline int crypto_init() {
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
  return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
#else
  return 0;
#endif
}

// Minimum protocol TLS 1.2 (Debian's 2.28 build still enables 1.0/1.1).
inline void conf_min_tls12(mbedtls_ssl_config* conf) {
#if MBEDTLS_VERSION_MAJOR >= 3
  mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

// 3.x added RNG arguments (used for blinding while checking/deriving the public part).
inline int pk_parse_key(mbedtls_pk_context* pk, const unsigned char* key, size_t len,
                        mbedtls_ctr_drbg_context* drbg) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_parse_key(pk, key, len, nullptr, 0, mbedtls_ctr_drbg_random, drbg);
#else
  (void)drbg;
  return mbedtls_pk_parse_key(pk, key, len, nullptr, 0);
#endif
}

inline int pk_check_pair(const mbedtls_pk_context* pub, const mbedtls_pk_context* prv,
                         mbedtls_ctr_drbg_context* drbg) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_check_pair(pub, prv, mbedtls_ctr_drbg_random, drbg);
#else
  (void)drbg;
  return mbedtls_pk_check_pair(pub, prv);
#endif
}

// 3.x added the output buffer size (sig_size) before sig_len.
inline int pk_sign(mbedtls_pk_context* pk, mbedtls_md_type_t md, const unsigned char* hash,
                   size_t hash_len, unsigned char* sig, size_t sig_size, size_t* sig_len,
                   mbedtls_ctr_drbg_context* drbg) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_sign(pk, md, hash, hash_len, sig, sig_size, sig_len, mbedtls_ctr_drbg_random,
                         drbg);
#else
  (void)sig_size;  // 2.x writes at most MBEDTLS_PK_SIGNATURE_MAX_SIZE; callers size for that
  return mbedtls_pk_sign(pk, md, hash, hash_len, sig, sig_len, mbedtls_ctr_drbg_random, drbg);
#endif
}

// Curve of an EC key, or MBEDTLS_ECP_DP_NONE. The keypair's group is a private field in 3.x;
// 3.6 added an accessor for it.
inline mbedtls_ecp_group_id pk_ec_group(const mbedtls_pk_context* pk) {
  if (!mbedtls_pk_can_do(pk, MBEDTLS_PK_ECKEY)) return MBEDTLS_ECP_DP_NONE;
  const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(*pk);
  if (ec == nullptr) return MBEDTLS_ECP_DP_NONE;
#if MBEDTLS_VERSION_NUMBER >= 0x03060000
  return mbedtls_ecp_keypair_get_group_id(ec);
#else
  return ec->MBEDTLS_PRIVATE(grp).id;
#endif
}

}  // namespace aloha::net::compat
