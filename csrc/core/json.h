// A small JSON value for engine sidecars: parse (RFC 8259, UTF-8 passed through) and write with
// members in insertion order, so files written here and by Python's json module read the same.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ifrt {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;  // null
  Json(bool value) : type_(Type::Bool), bool_(value) {}
  Json(double value) : type_(Type::Number), number_(value) {}
  Json(int value) : Json(static_cast<double>(value)) {}
  Json(int64_t value) : Json(static_cast<double>(value)) {}
  Json(const char* value) : type_(Type::String), string_(value) {}
  Json(std::string value) : type_(Type::String), string_(std::move(value)) {}
  static Json array();
  static Json object();

  // Throws ifrt::Error(InvalidArgument) with the byte offset of the problem.
  static Json parse(const std::string& text);
  std::string dump(int indent = 2) const;

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_string() const { return type_ == Type::String; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed reads; each throws ifrt::Error(InvalidArgument) naming the expected type on mismatch.
  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;  // a number with no fractional part
  const std::string& as_string() const;
  const std::vector<Json>& items() const;
  const std::vector<std::pair<std::string, Json>>& members() const;

  // Object member lookup: nullptr when absent (or when this is not an object).
  const Json* find(const std::string& key) const;
  // Object member for writing: inserted (as null) at the end when absent.
  Json& operator[](const std::string& key);
  void push_back(Json value);

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

}  // namespace ifrt
