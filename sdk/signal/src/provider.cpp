// libsignal's crypto provider on OpenSSL 3: random bytes, HMAC-SHA256,
// SHA-512 and AES (CBC with PKCS#5 padding, CTR without) as the library
// asks for them.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <vector>

#include "internal.hpp"

namespace parley::sdk::libsignal {

namespace {

int Random(uint8_t* data, size_t len, void*) {
  return RAND_bytes(data, static_cast<int>(len)) == 1 ? SG_SUCCESS : SG_ERR_UNKNOWN;
}

int HmacInit(void** context, const uint8_t* key, size_t key_len, void*) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return SG_ERR_UNKNOWN;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  if (ctx == nullptr) return SG_ERR_NOMEM;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx, key, key_len, params) != 1) {
    EVP_MAC_CTX_free(ctx);
    return SG_ERR_UNKNOWN;
  }
  *context = ctx;
  return SG_SUCCESS;
}

int HmacUpdate(void* context, const uint8_t* data, size_t len, void*) {
  return EVP_MAC_update(static_cast<EVP_MAC_CTX*>(context), data, len) == 1 ? SG_SUCCESS
                                                                            : SG_ERR_UNKNOWN;
}

int HmacFinal(void* context, signal_buffer** output, void*) {
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_MAC_final(static_cast<EVP_MAC_CTX*>(context), md, &len, sizeof md) != 1) {
    return SG_ERR_UNKNOWN;
  }
  *output = signal_buffer_create(md, len);
  return *output != nullptr ? SG_SUCCESS : SG_ERR_NOMEM;
}

void HmacCleanup(void* context, void*) { EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX*>(context)); }

int ShaInit(void** context, void*) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return SG_ERR_NOMEM;
  if (EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    return SG_ERR_UNKNOWN;
  }
  *context = ctx;
  return SG_SUCCESS;
}

int ShaUpdate(void* context, const uint8_t* data, size_t len, void*) {
  return EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context), data, len) == 1 ? SG_SUCCESS
                                                                             : SG_ERR_UNKNOWN;
}

int ShaFinal(void* context, signal_buffer** output, void*) {
  auto* ctx = static_cast<EVP_MD_CTX*>(context);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, md, &len) != 1) return SG_ERR_UNKNOWN;
  // libsignal reuses the context after final: make it ready again.
  if (EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) != 1) return SG_ERR_UNKNOWN;
  *output = signal_buffer_create(md, len);
  return *output != nullptr ? SG_SUCCESS : SG_ERR_NOMEM;
}

void ShaCleanup(void* context, void*) { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context)); }

const EVP_CIPHER* CipherFor(int cipher, size_t key_len) {
  const bool cbc = cipher == SG_CIPHER_AES_CBC_PKCS5;
  if (!cbc && cipher != SG_CIPHER_AES_CTR_NOPADDING) return nullptr;
  switch (key_len) {
    case 16:
      return cbc ? EVP_aes_128_cbc() : EVP_aes_128_ctr();
    case 24:
      return cbc ? EVP_aes_192_cbc() : EVP_aes_192_ctr();
    case 32:
      return cbc ? EVP_aes_256_cbc() : EVP_aes_256_ctr();
    default:
      return nullptr;
  }
}

int Crypt(bool encrypt, signal_buffer** output, int cipher, const uint8_t* key, size_t key_len,
          const uint8_t* iv, size_t iv_len, const uint8_t* in, size_t in_len) {
  const EVP_CIPHER* evp = CipherFor(cipher, key_len);
  if (evp == nullptr || iv_len != 16) return SG_ERR_INVAL;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return SG_ERR_NOMEM;
  std::vector<uint8_t> out(in_len + static_cast<size_t>(EVP_CIPHER_get_block_size(evp)) + 16);
  int len = 0, final_len = 0;
  bool ok = EVP_CipherInit_ex(ctx, evp, nullptr, key, iv, encrypt ? 1 : 0) == 1;
  if (ok && cipher == SG_CIPHER_AES_CTR_NOPADDING) ok = EVP_CIPHER_CTX_set_padding(ctx, 0) == 1;
  ok = ok && EVP_CipherUpdate(ctx, out.data(), &len, in, static_cast<int>(in_len)) == 1;
  ok = ok && EVP_CipherFinal_ex(ctx, out.data() + len, &final_len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return SG_ERR_UNKNOWN;
  *output = signal_buffer_create(out.data(), static_cast<size_t>(len + final_len));
  return *output != nullptr ? SG_SUCCESS : SG_ERR_NOMEM;
}

int Encrypt(signal_buffer** output, int cipher, const uint8_t* key, size_t key_len,
            const uint8_t* iv, size_t iv_len, const uint8_t* plaintext, size_t plaintext_len,
            void*) {
  return Crypt(true, output, cipher, key, key_len, iv, iv_len, plaintext, plaintext_len);
}

int Decrypt(signal_buffer** output, int cipher, const uint8_t* key, size_t key_len,
            const uint8_t* iv, size_t iv_len, const uint8_t* ciphertext, size_t ciphertext_len,
            void*) {
  return Crypt(false, output, cipher, key, key_len, iv, iv_len, ciphertext, ciphertext_len);
}

}  // namespace

const signal_crypto_provider& OpenSslProvider() {
  static const signal_crypto_provider provider = {
      .random_func = Random,
      .hmac_sha256_init_func = HmacInit,
      .hmac_sha256_update_func = HmacUpdate,
      .hmac_sha256_final_func = HmacFinal,
      .hmac_sha256_cleanup_func = HmacCleanup,
      .sha512_digest_init_func = ShaInit,
      .sha512_digest_update_func = ShaUpdate,
      .sha512_digest_final_func = ShaFinal,
      .sha512_digest_cleanup_func = ShaCleanup,
      .encrypt_func = Encrypt,
      .decrypt_func = Decrypt,
      .user_data = nullptr,
  };
  return provider;
}

Status Check(int rc, std::string_view what) {
  if (rc >= 0) return {};
  std::string code = "crypto";
  switch (rc) {
    case SG_ERR_UNTRUSTED_IDENTITY:
      code = "untrusted_identity";
      break;
    case SG_ERR_DUPLICATE_MESSAGE:
      code = "duplicate_message";
      break;
    case SG_ERR_NO_SESSION:
      code = "no_session";
      break;
    default:
      break;
  }
  return Fail(code, std::string(what) + " failed (libsignal error " + std::to_string(rc) + ")");
}

}  // namespace parley::sdk::libsignal
