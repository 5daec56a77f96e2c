// Reading hostile JSON: every accessor checks presence and type and answers
// an error whose message names the field, which becomes bad_request.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace parley::proto {

namespace json = boost::json;

// Parses one JSON object (the body of a request or a frame). Fails for
// anything else, and for nesting deeper than 32 levels.
Result<json::object> ParseObject(std::string_view text);

// Required fields.
Result<std::string_view> GetString(const json::object& obj, std::string_view key,
                                   std::size_t max_len = 4096);
Result<std::uint64_t> GetId(const json::object& obj, std::string_view key);  // a decimal string
Result<std::int64_t> GetInt(const json::object& obj,
                            std::string_view key);  // number or decimal string
Result<const json::object*> GetObject(const json::object& obj, std::string_view key);
Result<const json::array*> GetArray(const json::object& obj, std::string_view key,
                                    std::size_t max_items);

// Optional fields: nullopt when absent or null; an error when present with
// the wrong type.
Result<std::optional<std::string_view>> GetOptString(const json::object& obj, std::string_view key,
                                                     std::size_t max_len = 4096);
Result<std::optional<std::uint64_t>> GetOptId(const json::object& obj, std::string_view key);

// Renders a value compactly.
std::string Serialize(const json::value& v);

// {"error":{"code":...,"message":...}} for HTTP.
std::string HttpErrorBody(std::string_view code, std::string_view message);

}  // namespace parley::proto
