// PlaintextCrypto: the backend that does not encrypt. The SDK never calls
// its cipher methods (Encrypts() is false); they answer "unsupported" so
// that a misuse is an error, never a message that silently went in clear.
#include "parley/crypto.hpp"

#include <atomic>

namespace parley::sdk {

namespace {
std::atomic<CryptoFactory> default_factory{nullptr};

std::unexpected<Error> Unsupported() {
  return Fail("unsupported", "the plaintext backend does not encrypt");
}
}  // namespace

void SetDefaultCrypto(CryptoFactory factory) { default_factory.store(factory); }

std::unique_ptr<Crypto> MakeDefaultCrypto() {
  if (auto factory = default_factory.load()) return factory();
  return std::make_unique<PlaintextCrypto>();
}

Status PlaintextCrypto::StartSession(const PreKeyBundle&) { return Unsupported(); }

Result<std::vector<Ciphertext>> PlaintextCrypto::Encrypt(std::span<const DeviceAddress>,
                                                         std::string_view) {
  return Unsupported();
}

Result<std::string> PlaintextCrypto::Decrypt(const DeviceAddress&, const Ciphertext&) {
  return Unsupported();
}

Result<std::string> PlaintextCrypto::OwnSenderKey(const std::string&) { return Unsupported(); }

Status PlaintextCrypto::ProcessSenderKey(const std::string&, const DeviceAddress&,
                                         std::string_view) {
  return Unsupported();
}

Result<std::string> PlaintextCrypto::GroupEncrypt(const std::string&, std::string_view) {
  return Unsupported();
}

Result<std::string> PlaintextCrypto::GroupDecrypt(const std::string&, const DeviceAddress&,
                                                  std::string_view) {
  return Unsupported();
}

Result<std::string> PlaintextCrypto::IdentityKey() { return Unsupported(); }

Result<Fingerprint> PlaintextCrypto::ComputeFingerprint(const std::string&,
                                                        std::span<const std::string>,
                                                        const std::string&,
                                                        std::span<const std::string>) {
  return Unsupported();
}

}  // namespace parley::sdk
