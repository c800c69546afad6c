// The sidecar JSON reader/writer: round trips, what Python's json module writes, and clear errors.
#include <string>

#include "check.h"
#include "core/common.h"
#include "core/json.h"

namespace {

bool parse_fails_with(const std::string& text, const std::string& fragment) {
  try {
    ifrt::Json::parse(text);
  } catch (const ifrt::Error& e) {
    return e.code() == ifrt::ErrorCode::InvalidArgument && std::string(e.what()).find(fragment) != std::string::npos;
  }
  return false;
}

}  // namespace

int main() {
  // As json.dumps(..., indent=2) writes it, with a non-ASCII name escaped as a surrogate pair.
  const std::string text = R"({
  "name": "Orin \u00b5 \ud83d\udd2c",
  "shape": [1, 1, 512, 512],
  "workspace_bytes": 4294967296,
  "scale": -2.5e-3,
  "strongly_typed": true,
  "metadata": null,
  "profiles": [{"image": {"min": [1, 1, 32, 32]}}]
})";
  const auto j = ifrt::Json::parse(text);
  CHECK(j.find("name")->as_string() == "Orin \xc2\xb5 \xf0\x9f\x94\xac");
  CHECK(j.find("shape")->items().size() == 4);
  CHECK(j.find("shape")->items()[3].as_int() == 512);
  CHECK(j.find("workspace_bytes")->as_int() == 4294967296LL);
  CHECK_NEAR(j.find("scale")->as_number(), -0.0025, 1e-15);
  CHECK(j.find("strongly_typed")->as_bool());
  CHECK(j.find("metadata")->is_null());
  CHECK(j.find("absent") == nullptr);
  CHECK(j.find("profiles")->items()[0].find("image")->find("min")->items()[2].as_int() == 32);

  // Members keep their order, and dump -> parse is the identity.
  CHECK(j.members()[0].first == "name" && j.members()[6].first == "profiles");
  const auto again = ifrt::Json::parse(j.dump());
  CHECK(again.dump() == j.dump());
  CHECK(again.find("name")->as_string() == j.find("name")->as_string());

  ifrt::Json obj;
  obj["quote"] = "say \"hi\"\n\t\\";
  obj["count"] = 3;
  CHECK(obj.dump(0) == R"({"quote":"say \"hi\"\n\t\\","count":3})");
  CHECK(ifrt::Json::parse(obj.dump(0)).find("quote")->as_string() == "say \"hi\"\n\t\\");

  CHECK(parse_fails_with("{\"a\": 1,}", "byte 8"));
  CHECK(parse_fails_with("[1, 2", "expected ']'"));
  CHECK(parse_fails_with("\"open", "unterminated string"));
  CHECK(parse_fails_with("{} x", "unexpected text after"));
  CHECK(parse_fails_with(std::string(100, '['), "deeper than 64"));

  bool type_error = false;
  try {
    j.find("name")->as_int();
  } catch (const ifrt::Error& e) {
    type_error = std::string(e.what()) == "JSON value is a string, expected a number";
  }
  CHECK(type_error);
  return TEST_MAIN_RESULT();
}
