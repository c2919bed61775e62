#pragma once
// A small JSON value: null, bool, number (double), string, array, object (keys kept in insertion
// order, unique). Used for safetensors headers, metrics.json, JSON logs and the HTTP API.
//
//   Json j = Json::parse(text);            // strict RFC 8259; Error names line, column, offset
//   double lr = j.at("lr").as_number();    // at() throws Error naming a missing key
//   Json out = Json::object();
//   out["loss"] = 0.25;                    // operator[] inserts (null becomes an object)
//   out["classes"] = Json::array({"cat", "dog"});
//   std::string text = out.dump(2);        // pretty; dump() is compact, on one line
//
// Numbers are doubles: integers are exact up to 2^53, and dump() prints the shortest text that
// parses back to the same double. NaN and infinities have no JSON spelling: dump() writes them
// as null (as JavaScript's JSON.stringify does). Strings are bytes: dump() copies well-formed
// UTF-8 and writes every byte that is not part of one (a Latin-1 file name) as \ufffd, the
// replacement character (as Python's errors="replace" does), so its output is always valid JSON.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace scalpel {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;  // insertion order; lookups are linear (small objects)

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool value) : value_(value) {}
  Json(double value) : value_(value) {}
  Json(float value) : value_(static_cast<double>(value)) {}
  Json(int value) : value_(static_cast<double>(value)) {}
  Json(long value) : value_(static_cast<double>(value)) {}
  Json(long long value) : value_(static_cast<double>(value)) {}
  Json(unsigned value) : value_(static_cast<double>(value)) {}
  Json(unsigned long value) : value_(static_cast<double>(value)) {}
  Json(unsigned long long value) : value_(static_cast<double>(value)) {}
  Json(const char* value) : value_(std::string(value)) {}
  Json(std::string_view value) : value_(std::string(value)) {}
  Json(std::string value) : value_(std::move(value)) {}
  Json(Array value) : value_(std::move(value)) {}

  static Json array(std::initializer_list<Json> items = {}) { return Json(Array(items)); }
  static Json object();
  // Parses one JSON text (surrounding whitespace allowed, nothing else). Throws Error
  // "<source>: invalid JSON at line L, column C (byte N): <what>".
  static Json parse(std::string_view text, std::string_view source = "JSON");

  Type type() const { return static_cast<Type>(value_.index()); }
  std::string_view type_name() const;  // "null", "bool", "number", ...
  bool is_null() const { return type() == Type::Null; }
  bool is_bool() const { return type() == Type::Bool; }
  bool is_number() const { return type() == Type::Number; }
  bool is_string() const { return type() == Type::String; }
  bool is_array() const { return type() == Type::Array; }
  bool is_object() const { return type() == Type::Object; }

  // Typed access; each throws Error naming the expected and the actual type.
  bool as_bool() const;
  double as_number() const;
  // The number as an integer; throws Error unless it is integral and fits in int64.
  int64_t as_int() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Objects. operator[] inserts a null member when `key` is absent (a null Json becomes an
  // empty object first); on a const Json it is at(). at() throws Error naming the missing key;
  // find() returns null.
  Json& operator[](std::string_view key);
  const Json& operator[](std::string_view key) const { return at(key); }
  const Json& at(std::string_view key) const;
  Json& at(std::string_view key);
  const Json* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  // Arrays. at() and operator[] check the index (Error naming index and size).
  const Json& operator[](size_t index) const { return at(index); }
  Json& operator[](size_t index) { return at(index); }
  const Json& at(size_t index) const;
  Json& at(size_t index);
  // Appends to an array (a null Json becomes an empty array first).
  void push_back(Json value);
  // Number of elements of an array or members of an object; Error for other types.
  size_t size() const;

  // indent < 0: compact, one line, no spaces. indent >= 0: pretty, `indent` spaces per level.
  std::string dump(int indent = -1) const;

  bool operator==(const Json& other) const = default;

 private:
  struct ObjectTag {};
  explicit Json(ObjectTag) : value_(Object{}) {}
  [[noreturn]] void type_error(std::string_view expected) const;
  void dump_to(std::string& out, int indent, int depth) const;

  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> value_;
};

}  // namespace scalpel
