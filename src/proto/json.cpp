#include "proto/json.hpp"

#include <charconv>

#include "common/ids.hpp"

namespace parley::proto {

namespace {

std::unexpected<Error> Bad(std::string_view key, std::string_view what) {
  return Fail(Errc::kInvalid, std::string(key) + ": " + std::string(what));
}

}  // namespace

Result<json::object> ParseObject(std::string_view text) {
  json::parse_options opts;
  opts.max_depth = 32;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) return Fail(Errc::kInvalid, "not JSON: " + ec.message());
  if (!v.is_object()) return Fail(Errc::kInvalid, "not a JSON object");
  return std::move(v.as_object());
}

Result<std::optional<std::string_view>> GetOptString(const json::object& obj, std::string_view key,
                                                     std::size_t max_len) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return std::optional<std::string_view>{};
  if (!it->value().is_string()) return Bad(key, "must be a string");
  const auto& s = it->value().get_string();
  if (s.size() > max_len) return Bad(key, "too long");
  return std::optional<std::string_view>{std::string_view(s)};
}

Result<std::string_view> GetString(const json::object& obj, std::string_view key,
                                   std::size_t max_len) {
  auto r = GetOptString(obj, key, max_len);
  if (!r) return std::unexpected(r.error());
  if (!*r) return Bad(key, "required");
  return **r;
}

Result<std::optional<std::uint64_t>> GetOptId(const json::object& obj, std::string_view key) {
  auto s = GetOptString(obj, key, 20);
  if (!s) return std::unexpected(s.error());
  if (!*s) return std::optional<std::uint64_t>{};
  auto id = ParseId(**s);
  if (!id) return Bad(key, "must be an id (a decimal string)");
  return std::optional<std::uint64_t>{*id};
}

Result<std::uint64_t> GetId(const json::object& obj, std::string_view key) {
  auto r = GetOptId(obj, key);
  if (!r) return std::unexpected(r.error());
  if (!*r) return Bad(key, "required");
  return **r;
}

Result<std::int64_t> GetInt(const json::object& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return Bad(key, "required");
  const auto& v = it->value();
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (v.is_string()) {
    const auto& s = v.get_string();
    std::int64_t out = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return out;
  }
  return Bad(key, "must be an integer");
}

Result<const json::object*> GetObject(const json::object& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return Bad(key, "required");
  if (!it->value().is_object()) return Bad(key, "must be an object");
  return &it->value().get_object();
}

Result<const json::array*> GetArray(const json::object& obj, std::string_view key,
                                    std::size_t max_items) {
  auto it = obj.find(key);
  if (it == obj.end() || it->value().is_null()) return Bad(key, "required");
  if (!it->value().is_array()) return Bad(key, "must be an array");
  if (it->value().get_array().size() > max_items) {
    return Bad(key, "at most " + std::to_string(max_items) + " items");
  }
  return &it->value().get_array();
}

std::string Serialize(const json::value& v) { return json::serialize(v); }

std::string HttpErrorBody(std::string_view code, std::string_view message) {
  json::object inner;
  inner["code"] = code;
  inner["message"] = message;
  json::object outer;
  outer["error"] = std::move(inner);
  return json::serialize(outer);
}

}  // namespace parley::proto
