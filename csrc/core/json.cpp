#include "core/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/common.h"

namespace ifrt {

namespace {

const char* type_name(Json::Type type) {
  switch (type) {
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return "a boolean";
    case Json::Type::Number: return "a number";
    case Json::Type::String: return "a string";
    case Json::Type::Array: return "an array";
    case Json::Type::Object: return "an object";
  }
  return "?";
}

[[noreturn]] void wrong_type(Json::Type got, const char* expected) {
  fail(ErrorCode::InvalidArgument, std::string("JSON value is ") + type_name(got) + ", expected " + expected);
}

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Json document() {
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the JSON value");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 64;  // sidecars are shallow; this stops stack exhaustion on hostile input

  [[noreturn]] void error(const std::string& what) const {
    fail(ErrorCode::InvalidArgument, "invalid JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
  }
  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) error(std::string("expected '") + c + "'");
  }
  bool literal(const char* word) {
    const std::string w(word);
    if (text_.compare(pos_, w.size(), w) == 0) {
      pos_ += w.size();
      return true;
    }
    return false;
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) error("nesting deeper than 64 levels");
    skip_space();
    if (pos_ >= text_.size()) error("unexpected end of text");
    const char c = text_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') return Json(parse_string());
    if (literal("true")) return Json(true);
    if (literal("false")) return Json(false);
    if (literal("null")) return Json();
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    error(std::string("unexpected character '") + c + "'");
  }

  Json parse_object(int depth) {
    ++pos_;
    Json obj = Json::object();
    if (consume('}')) return obj;
    do {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') error("expected a member name in quotes");
      std::string key = parse_string();
      expect(':');
      obj[key] = parse_value(depth + 1);
    } while (consume(','));
    expect('}');
    return obj;
  }

  Json parse_array(int depth) {
    ++pos_;
    Json arr = Json::array();
    if (consume(']')) return arr;
    do {
      arr.push_back(parse_value(depth + 1));
    } while (consume(','));
    expect(']');
    return arr;
  }

  Json parse_number() {
    const size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      if (pos_ == from) error("expected a digit");
    };
    digits();
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      digits();
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      digits();
    }
    return Json(std::strtod(text_.substr(start, pos_ - start).c_str(), nullptr));
  }

  unsigned hex4() {
    if (pos_ + 4 > text_.size()) error("truncated \\u escape");
    unsigned value = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      value <<= 4;
      if (h >= '0' && h <= '9') value |= unsigned(h - '0');
      else if (h >= 'a' && h <= 'f') value |= unsigned(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') value |= unsigned(h - 'A' + 10);
      else error("bad hex digit in \\u escape");
    }
    return value;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) error("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // surrogate pair (Python writes non-ASCII this way)
            if (!literal("\\u")) error("lone high surrogate");
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) error("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error(std::string("unknown escape \\") + e);
      }
    }
  }

  const std::string& text_;
  size_t pos_ = 0;
};

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void write_value(std::string& out, const Json& v, int indent, int level) {
  const auto newline = [&](int lvl) {
    if (indent > 0) {
      out += '\n';
      out.append(static_cast<size_t>(indent * lvl), ' ');
    }
  };
  switch (v.type()) {
    case Json::Type::Null: out += "null"; break;
    case Json::Type::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Json::Type::Number: {
      const double x = v.as_number();
      if (!std::isfinite(x)) fail(ErrorCode::InvalidArgument, "JSON cannot represent a non-finite number");
      char buf[32];
      if (x == std::floor(x) && std::fabs(x) < 9007199254740992.0) {
        std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(x));
      } else {
        std::snprintf(buf, sizeof(buf), "%.17g", x);
      }
      out += buf;
      break;
    }
    case Json::Type::String: write_string(out, v.as_string()); break;
    case Json::Type::Array: {
      // Short arrays of numbers (shapes) stay on one line: sidecars are read by people too.
      bool flat = true;
      for (const auto& item : v.items()) flat = flat && !item.is_array() && !item.is_object();
      out += '[';
      bool first = true;
      for (const auto& item : v.items()) {
        if (!first) out += flat ? ", " : ",";
        if (!flat) newline(level + 1);
        write_value(out, item, indent, level + 1);
        first = false;
      }
      if (!flat && !v.items().empty()) newline(level);
      out += ']';
      break;
    }
    case Json::Type::Object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.members()) {
        if (!first) out += ',';
        newline(level + 1);
        write_string(out, key);
        out += indent > 0 ? ": " : ":";
        write_value(out, item, indent, level + 1);
        first = false;
      }
      if (!v.members().empty()) newline(level);
      out += '}';
      break;
    }
  }
}

}  // namespace

Json Json::array() {
  Json j;
  j.type_ = Type::Array;
  return j;
}

Json Json::object() {
  Json j;
  j.type_ = Type::Object;
  return j;
}

Json Json::parse(const std::string& text) { return Parser(text).document(); }

std::string Json::dump(int indent) const {
  std::string out;
  write_value(out, *this, indent, 0);
  if (indent > 0) out += '\n';
  return out;
}

bool Json::as_bool() const {
  if (type_ != Type::Bool) wrong_type(type_, "a boolean");
  return bool_;
}

double Json::as_number() const {
  if (type_ != Type::Number) wrong_type(type_, "a number");
  return number_;
}

int64_t Json::as_int() const {
  const double x = as_number();
  if (x != std::floor(x) || std::fabs(x) >= 9007199254740992.0) {
    fail(ErrorCode::InvalidArgument, "JSON number " + std::to_string(x) + " is not an integer");
  }
  return static_cast<int64_t>(x);
}

const std::string& Json::as_string() const {
  if (type_ != Type::String) wrong_type(type_, "a string");
  return string_;
}

const std::vector<Json>& Json::items() const {
  if (type_ != Type::Array) wrong_type(type_, "an array");
  return items_;
}

const std::vector<std::pair<std::string, Json>>& Json::members() const {
  if (type_ != Type::Object) wrong_type(type_, "an object");
  return members_;
}

const Json* Json::find(const std::string& key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& member : members_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

Json& Json::operator[](const std::string& key) {
  if (type_ == Type::Null) type_ = Type::Object;
  if (type_ != Type::Object) wrong_type(type_, "an object");
  for (auto& member : members_) {
    if (member.first == key) return member.second;
  }
  members_.emplace_back(key, Json());
  return members_.back().second;
}

void Json::push_back(Json value) {
  if (type_ == Type::Null) type_ = Type::Array;
  if (type_ != Type::Array) wrong_type(type_, "an array");
  items_.push_back(std::move(value));
}

}  // namespace ifrt
