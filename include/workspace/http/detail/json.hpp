// Every JSON text the library reads goes through parse_json, as a string_view: that is the one
// parser nlohmann's header already instantiates (for its _json literal), so reading a
// std::string directly would compile a second, identical parser into every program.
#pragma once

#include <workspace/version.hpp>

#include <nlohmann/json.hpp>

#include <string_view>

WORKSPACE_NAMESPACE_BEGIN
namespace http::detail {

// The value, or a discarded value (is_discarded()) when `text` is not JSON; never throws.
inline nlohmann::json parse_json(std::string_view text) { return nlohmann::json::parse(text, nullptr, false); }

}  // namespace http::detail
WORKSPACE_NAMESPACE_END
