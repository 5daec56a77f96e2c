// The libsignal-protocol-c side of the web client's interop check
// (web/test/interop.test.mjs): one device of the SDK's Signal backend
// (parley_sdk_signal, exactly what the CLI runs), with its state in memory,
// driven by one JSON request per line on stdin, one JSON answer per line on
// stdout. Binary values are base64. No server, no network.
//
//   {"op":"open","user":U,"device":D}           -> {}
//   {"op":"keys"}                               -> keys.upload's fields
//   {"op":"start","user":U,"bundle":{...}}      -> {}   (a keys.bundle entry)
//   {"op":"encrypt","to":{user,device},"data"}  -> {"type","data"}
//   {"op":"decrypt","from":{..},"type","data"}  -> {"data"}
//   {"op":"own_sender_key","group"}             -> {"data"}
//   {"op":"process_sender_key","group","from","data"} -> {}
//   {"op":"group_encrypt","group","data"}       -> {"data"}
//   {"op":"group_decrypt","group","from","data"} -> {"data"}
//   {"op":"forget","device":{..}}               -> {}
//   {"op":"fingerprint","local_user","local_keys","remote_user","remote_keys"} -> {"digits"}
//   {"op":"identity"}                           -> {"key"}
//   {"op":"open_file","blob","key"}             -> {"data"}  (AES-256-GCM, nonce||ct||tag)
//   {"op":"seal_file","data"}                   -> {"blob","key"}
// Failures answer {"error": "..."} and the loop goes on.
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <boost/json.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parley/crypto.hpp"
#include "parley/signal_crypto.hpp"

namespace json = boost::json;
using namespace parley::sdk;

namespace {

std::string B64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string UnB64(std::string_view in) {
  if (in.size() % 4 != 0) throw std::runtime_error("bad base64");
  std::string out(3 * in.size() / 4 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) throw std::runtime_error("bad base64");
  std::size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

class MemoryKv final : public KeyValueStore {
 public:
  Result<std::optional<std::string>> Get(std::string_view ns, std::string_view key) override {
    auto it = map_.find(Key(ns, key));
    if (it == map_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status Put(std::string_view ns, std::string_view key, std::string_view value) override {
    map_[Key(ns, key)] = std::string(value);
    return {};
  }
  Status Delete(std::string_view ns, std::string_view key) override {
    map_.erase(Key(ns, key));
    return {};
  }
  Result<std::vector<std::string>> Keys(std::string_view ns, std::string_view prefix) override {
    std::vector<std::string> out;
    const std::string p = Key(ns, prefix);
    for (auto it = map_.lower_bound(p); it != map_.end() && it->first.starts_with(p); ++it) {
      out.push_back(it->first.substr(ns.size() + 1));
    }
    return out;
  }

 private:
  static std::string Key(std::string_view ns, std::string_view key) {
    return std::string(ns) + '\x1f' + std::string(key);
  }
  std::map<std::string, std::string> map_;
};

std::string Str(const json::object& o, std::string_view k) {
  const auto* v = o.if_contains(k);
  if (v == nullptr || !v->is_string()) throw std::runtime_error("missing " + std::string(k));
  return std::string(v->as_string());
}

DeviceAddress Addr(const json::object& o, std::string_view k) {
  const auto* v = o.if_contains(k);
  if (v == nullptr || !v->is_object()) throw std::runtime_error("missing " + std::string(k));
  return {Str(v->as_object(), "user"), Str(v->as_object(), "device")};
}

std::vector<std::string> Keys(const json::object& o, std::string_view k) {
  std::vector<std::string> out;
  for (const auto& v : o.at(k).as_array()) out.push_back(UnB64(v.as_string()));
  return out;
}

template <class T>
T Must(Result<T> r) {
  if (!r) throw std::runtime_error(r.error().code + ": " + r.error().message);
  return std::move(*r);
}
void Must(Status s) {
  if (!s) throw std::runtime_error(s.error().code + ": " + s.error().message);
}

std::string Gcm(bool seal, const std::string& key, const std::string& nonce, const std::string& in,
                std::string* tag) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* iv = reinterpret_cast<const unsigned char*>(nonce.data());
  if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, k, iv, seal ? 1 : 0) != 1) {
    throw std::runtime_error("gcm init");
  }
  std::string out(in.size() + 16, '\0');
  int n = 0;
  if (EVP_CipherUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n,
                       reinterpret_cast<const unsigned char*>(in.data()),
                       static_cast<int>(in.size())) != 1) {
    throw std::runtime_error("gcm update");
  }
  if (!seal && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag->data()) != 1) {
    throw std::runtime_error("gcm tag");
  }
  int m = 0;
  if (EVP_CipherFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + n, &m) != 1) {
    throw std::runtime_error("gcm: authentication failed");
  }
  out.resize(static_cast<std::size_t>(n + m));
  if (seal) {
    tag->resize(16);
    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag->data());
  }
  return out;
}

json::object Handle(Crypto& crypto, MemoryKv& kv, const json::object& req) {
  const std::string op = Str(req, "op");
  json::object out;
  if (op == "open") {
    Must(crypto.Open({Str(req, "user"), Str(req, "device")}, kv));
  } else if (op == "keys") {
    auto up = Must(crypto.KeysToUpload(std::nullopt));
    if (up.identity_key) out["identity_key"] = B64(*up.identity_key);
    if (up.registration_id) out["registration_id"] = *up.registration_id;
    if (up.signed_prekey) {
      out["signed_prekey"] = {{"id", up.signed_prekey->id},
                              {"key", B64(up.signed_prekey->key)},
                              {"signature", B64(up.signed_prekey->signature)}};
    }
    json::array otks;
    for (const auto& k : up.one_time_prekeys) otks.push_back({{"id", k.id}, {"key", B64(k.key)}});
    out["one_time_prekeys"] = std::move(otks);
  } else if (op == "start") {
    const auto& b = req.at("bundle").as_object();
    PreKeyBundle bundle;
    bundle.device = {Str(req, "user"), Str(b, "device_id")};
    if (const auto* r = b.if_contains("registration_id")) {
      bundle.registration_id = static_cast<std::uint32_t>(r->to_number<std::int64_t>());
    }
    bundle.identity_key = UnB64(Str(b, "identity_key"));
    const auto& spk = b.at("signed_prekey").as_object();
    bundle.signed_prekey = {static_cast<std::uint32_t>(spk.at("id").to_number<std::int64_t>()),
                            UnB64(Str(spk, "key")), UnB64(Str(spk, "signature"))};
    if (const auto* otk = b.if_contains("one_time_prekey"); otk != nullptr && otk->is_object()) {
      bundle.one_time_prekey = OneTimePreKey{
          static_cast<std::uint32_t>(otk->as_object().at("id").to_number<std::int64_t>()),
          UnB64(Str(otk->as_object(), "key"))};
    }
    Must(crypto.StartSession(bundle));
  } else if (op == "encrypt") {
    const DeviceAddress to = Addr(req, "to");
    auto cts = Must(crypto.Encrypt(std::span(&to, 1), UnB64(Str(req, "data"))));
    out["type"] = cts.at(0).type == Ciphertext::Type::kPreKey ? "prekey" : "message";
    out["data"] = B64(cts.at(0).data);
  } else if (op == "decrypt") {
    Ciphertext c;
    c.device = {};
    c.type = Str(req, "type") == "prekey" ? Ciphertext::Type::kPreKey : Ciphertext::Type::kMessage;
    c.data = UnB64(Str(req, "data"));
    out["data"] = B64(Must(crypto.Decrypt(Addr(req, "from"), c)));
  } else if (op == "own_sender_key") {
    out["data"] = B64(Must(crypto.OwnSenderKey(Str(req, "group"))));
  } else if (op == "process_sender_key") {
    Must(crypto.ProcessSenderKey(Str(req, "group"), Addr(req, "from"), UnB64(Str(req, "data"))));
  } else if (op == "group_encrypt") {
    out["data"] = B64(Must(crypto.GroupEncrypt(Str(req, "group"), UnB64(Str(req, "data")))));
  } else if (op == "group_decrypt") {
    out["data"] = B64(
        Must(crypto.GroupDecrypt(Str(req, "group"), Addr(req, "from"), UnB64(Str(req, "data")))));
  } else if (op == "forget") {
    Must(crypto.ForgetDevice(Addr(req, "device")));
  } else if (op == "fingerprint") {
    const auto local = Keys(req, "local_keys");
    const auto remote = Keys(req, "remote_keys");
    out["digits"] = Must(crypto.ComputeFingerprint(Str(req, "local_user"), local,
                                                   Str(req, "remote_user"), remote))
                        .displayable;
  } else if (op == "identity") {
    out["key"] = B64(Must(crypto.IdentityKey()));
  } else if (op == "open_file") {
    const std::string blob = UnB64(Str(req, "blob"));
    if (blob.size() < 28) throw std::runtime_error("blob too short");
    std::string tag = blob.substr(blob.size() - 16);
    out["data"] = B64(Gcm(false, UnB64(Str(req, "key")), blob.substr(0, 12),
                          blob.substr(12, blob.size() - 28), &tag));
  } else if (op == "seal_file") {
    std::string key(32, '\0');
    std::string nonce(12, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32);
    RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), 12);
    std::string tag;
    const std::string ct = Gcm(true, key, nonce, UnB64(Str(req, "data")), &tag);
    out["blob"] = B64(nonce + ct + tag);
    out["key"] = B64(key);
  } else {
    throw std::runtime_error("unknown op " + op);
  }
  return out;
}

}  // namespace

int main() {
  auto crypto = MakeSignalCrypto();
  MemoryKv kv;
  std::string line;
  while (std::getline(std::cin, line)) {
    json::object answer;
    try {
      answer = Handle(*crypto, kv, json::parse(line).as_object());
    } catch (const std::exception& e) {
      answer = {{"error", e.what()}};
    }
    std::cout << json::serialize(answer) << '\n' << std::flush;
  }
  return 0;
}
