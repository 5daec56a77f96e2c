// Client::Impl, media: raw uploads and downloads (POST /v1/media, GET
// /v1/media/{id}, PROTOCOL.md section 6), and files sent as messages.
//
// Design note. With an encrypting backend a file is encrypted before it
// leaves the device: a random AES-256-GCM key and 96-bit nonce per file;
// the blob is nonce || ciphertext || 16-byte tag, uploaded as
// application/octet-stream (the server stores it as it is, and makes no
// thumbnail). The "file" message then carries {"name","content_type",
// "size","key","digest"}: the key and the SHA-256 of the blob travel inside
// the end-to-end encrypted message, so only its recipients can fetch,
// check and open the file. The receiver refuses a blob whose digest or GCM
// tag does not match. Without encryption the bytes go as they are, with
// their content type, and the message has no key.
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "client_impl.hpp"
#include "wire.hpp"

namespace parley::sdk {

using detail::Str;

namespace {

constexpr std::size_t kKeyBytes = 32, kNonceBytes = 12, kTagBytes = 16;

struct CipherCtx {
  EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(p); }
};

const unsigned char* U(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Result<std::string> Seal(const std::string& key, std::string_view plain) {
  std::string nonce(kNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), kNonceBytes) != 1) {
    return Fail("crypto", "no randomness");
  }
  std::string out = nonce;
  out.resize(kNonceBytes + plain.size() + kTagBytes);
  CipherCtx c;
  int len = 0, fin = 0;
  auto* dst = reinterpret_cast<unsigned char*>(out.data()) + kNonceBytes;
  if (c.p == nullptr ||
      EVP_EncryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, U(key), U(nonce)) != 1 ||
      EVP_EncryptUpdate(c.p, dst, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.p, dst + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_GET_TAG, kTagBytes, dst + plain.size()) != 1) {
    return Fail("crypto", "AES-256-GCM encryption failed");
  }
  return out;
}

Result<std::string> Unseal(const std::string& key, const std::string& blob) {
  if (key.size() != kKeyBytes) return Fail("crypto", "the file key is not 32 bytes");
  if (blob.size() < kNonceBytes + kTagBytes) return Fail("crypto", "the file is truncated");
  const std::size_t n = blob.size() - kNonceBytes - kTagBytes;
  std::string out(n, '\0');
  std::string tag = blob.substr(kNonceBytes + n);
  CipherCtx c;
  int len = 0, fin = 0;
  if (c.p == nullptr || EVP_DecryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, U(key), U(blob)) != 1 ||
      EVP_DecryptUpdate(c.p, reinterpret_cast<unsigned char*>(out.data()), &len,
                        U(blob) + kNonceBytes, static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(c.p, reinterpret_cast<unsigned char*>(out.data()) + len, &fin) != 1) {
    return Fail("crypto", "the file does not decrypt with its key (tampered?)");
  }
  return out;
}

}  // namespace

void Client::Impl::AuthedHttp(detail::HttpRequestSpec spec,
                              std::function<void(Result<detail::HttpResponse>)> done,
                              bool retried) {
  if (!tokens_ || !url_) return done(Fail("not_logged_in", "log in first"));
  auto with_auth = spec;
  with_auth.headers.emplace_back("Authorization", "Bearer " + tokens_->access_token);
  detail::HttpRequest(
      io_, *tls_, *url_, std::move(with_auth), [this, spec, done, retried](detail::HttpResponse r) {
        if (r.status == 0) return done(Fail("network", r.error));
        if (r.status == 401 && !retried) {
          // The access token expired: refresh, then once more.
          return Refresh([this, spec, done](Status s) {
            if (!s) return done(std::unexpected(s.error()));
            AuthedHttp(spec, done, true);
          });
        }
        if (r.status >= 300) {
          return done(std::unexpected(detail::ErrorFromHttp(r.status, r.body, r.headers)));
        }
        done(std::move(r));
      });
}

void Client::Impl::UploadMedia(std::string bytes, std::string content_type,
                               std::function<void(Result<MediaInfo>)> done) {
  detail::HttpRequestSpec spec;
  spec.method = "POST";
  spec.target = "/v1/media";
  spec.body = std::move(bytes);
  spec.content_type = content_type.empty() ? "application/octet-stream" : content_type;
  spec.timeout = std::max<std::chrono::milliseconds>(options_.request_timeout, kMediaTimeout);
  AuthedHttp(std::move(spec), [done](Result<detail::HttpResponse> r) {
    if (!r) return done(std::unexpected(r.error()));
    auto o = detail::ParseObject(r->body);
    if (!o || Str(*o, "media_id").empty()) {
      return done(Fail("protocol", "POST /v1/media answered no media_id"));
    }
    done(MediaInfo{Str(*o, "media_id"), Str(*o, "content_type"), detail::Int(*o, "size"),
                   Str(*o, "sha256")});
  });
}

void Client::Impl::DownloadMedia(const std::string& media_id,
                                 std::function<void(Result<std::string>)> done) {
  detail::HttpRequestSpec spec;
  spec.target = "/v1/media/" + media_id;
  spec.timeout = std::max<std::chrono::milliseconds>(options_.request_timeout, kMediaTimeout);
  AuthedHttp(std::move(spec), [done](Result<detail::HttpResponse> r) {
    if (!r) return done(std::unexpected(r.error()));
    done(std::move(r->body));
  });
}

void Client::Impl::SendFile(const Conv& to, std::string bytes, std::string name,
                            std::string content_type,
                            std::shared_ptr<std::promise<Result<SentMessage>>> promise) {
  if (content_type.empty()) content_type = "application/octet-stream";
  json::object body{{"name", name},
                    {"content_type", content_type},
                    {"size", static_cast<std::int64_t>(bytes.size())}};
  std::string upload = std::move(bytes);
  std::string upload_type = content_type;
  if (crypto_->Encrypts()) {
    std::string key(kKeyBytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeyBytes) != 1) {
      return promise->set_value(Fail("crypto", "no randomness"));
    }
    auto sealed = Seal(key, upload);
    if (!sealed) return promise->set_value(std::unexpected(sealed.error()));
    upload = std::move(*sealed);
    upload_type = "application/octet-stream";
    body["key"] = detail::Base64Encode(key);
    body["digest"] = detail::Sha256Hex(upload);
  }
  UploadMedia(std::move(upload), upload_type,
              [this, to, body = std::move(body), promise](Result<MediaInfo> r) mutable {
                if (!r) return promise->set_value(std::unexpected(r.error()));
                OutgoingMessage m;
                m.kind = "file";
                m.body_json = json::serialize(body);
                m.media_id = r->media_id;
                Send(to, std::move(m), promise);
              });
}

void Client::Impl::DownloadFile(const std::string& msg_id,
                                std::function<void(Result<std::string>)> done) {
  auto stored = store_->GetMessage(msg_id);
  if (!stored) return done(std::unexpected(stored.error()));
  if (!*stored) return done(Fail("not_found", "no message " + msg_id + " in this profile"));
  const Message m = std::move(**stored);
  if (m.media_id.empty()) return done(Fail("invalid", "message " + msg_id + " has no file"));
  auto body = detail::ParseObject(m.body_json).value_or(json::object{});
  const std::string key_b64 = Str(body, "key");
  const std::string digest = Str(body, "digest");
  DownloadMedia(m.media_id, [key_b64, digest, done](Result<std::string> r) {
    if (!r) return done(std::unexpected(r.error()));
    if (key_b64.empty()) return done(std::move(*r));  // sent in the clear
    if (detail::Sha256Hex(*r) != digest) {
      return done(Fail("crypto", "the file does not match the digest in its message (tampered?)"));
    }
    auto key = detail::Base64Decode(key_b64);
    if (!key) return done(Fail("crypto", "the file key is not base64"));
    done(Unseal(*key, *r));
  });
}

}  // namespace parley::sdk
