#include "tensor/json.h"

#include <cmath>
#include <cstdlib>

#include "tensor/error.h"

namespace scalpel {

namespace {

// Nesting deeper than this is refused: the parser recurses, and no sane document needs more.
constexpr int kMaxDepth = 512;

// The byte length of the well-formed UTF-8 character at s[i], or 0 when it is malformed,
// truncated, overlong or a surrogate.
size_t utf8_char_length(std::string_view s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  size_t length;
  uint32_t cp;
  if (lead < 0x80) {
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < length) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  Json parse_document() {
    skip_space();
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void error(std::string_view what) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    fail("{}: invalid JSON at line {}, column {} (byte {}): {}", source_, line, column, pos_, what);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  void expect_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) error(fmt::format("expected '{}'", word));
    pos_ += word.size();
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) error(fmt::format("nesting deeper than {} levels", kMaxDepth));
    switch (peek()) {
      case '{': return parse_object(depth);
      case '[': return parse_array(depth);
      case '"': return Json(parse_string());
      case 't': expect_word("true"); return Json(true);
      case 'f': expect_word("false"); return Json(false);
      case 'n': expect_word("null"); return Json();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return Json(parse_number());
        if (at_end()) error("unexpected end of text, expected a value");
        error(fmt::format("unexpected character '{}', expected a value", peek()));
    }
  }

  Json parse_object(int depth) {
    ++pos_;  // '{'
    Json result = Json::object();
    Json::Object& members = result.as_object();
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return result;
    }
    for (;;) {
      skip_space();
      if (peek() != '"') error("expected a string key in object");
      const size_t key_pos = pos_;
      std::string key = parse_string();
      if (result.find(key)) {
        pos_ = key_pos;
        error(fmt::format("duplicate key \"{}\"", key));
      }
      skip_space();
      if (peek() != ':') error("expected ':' after object key");
      ++pos_;
      skip_space();
      members.emplace_back(std::move(key), parse_value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return result;
      }
      error("expected ',' or '}' in object");
    }
  }

  Json parse_array(int depth) {
    ++pos_;  // '['
    Json::Array items;
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return Json(std::move(items));
    }
    for (;;) {
      skip_space();
      items.push_back(parse_value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return Json(std::move(items));
      }
      error("expected ',' or ']' in array");
    }
  }

  // RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  double parse_number() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - from;
    };
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (peek() >= '0' && peek() <= '9') error("leading zeros are not allowed in numbers");
    } else if (digits() == 0) {
      error("expected digits in number");
    }
    if (peek() == '.') {
      ++pos_;
      if (digits() == 0) error("expected digits after '.' in number");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) error("expected digits in exponent");
    }
    // strtod needs a terminated string; the grammar above already validated the text.
    const std::string number(text_.substr(start, pos_ - start));
    const double value = std::strtod(number.c_str(), nullptr);
    if (!std::isfinite(value)) {
      pos_ = start;
      error(fmt::format("number {} is out of range", number));
    }
    return value;
  }

  uint32_t parse_hex4() {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = peek();
      uint32_t digit;
      if (c >= '0' && c <= '9') digit = c - '0';
      else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      else error("expected 4 hex digits after \\u");
      value = value * 16 + digit;
      ++pos_;
    }
    return value;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Copies one UTF-8 encoded character, refusing malformed, overlong and surrogate encodings.
  void copy_utf8_char(std::string& out) {
    const size_t length = utf8_char_length(text_, pos_);
    if (length == 0) error("invalid UTF-8 in string");
    out.append(text_.substr(pos_, length));
    pos_ += length;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) error("unterminated string");
      const char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string (escape it)");
      if (c != '\\') {
        copy_utf8_char(out);
        continue;
      }
      ++pos_;
      const char escape = peek();
      ++pos_;
      switch (escape) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) error("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (peek() != '\\' || text_.substr(pos_ + 1, 1) != "u") {
              error("high surrogate not followed by a \\u low surrogate");
            }
            pos_ += 2;
            const uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) error("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          --pos_;
          error("invalid escape in string");
      }
    }
  }

  std::string_view text_;
  std::string_view source_;
  size_t pos_ = 0;
};

void dump_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else if (const size_t length = utf8_char_length(s, i); length > 0) {
          out.append(s.substr(i, length));  // well-formed UTF-8 passes through unchanged
          i += length - 1;
        } else {
          out += "\\ufffd";  // a byte that is not UTF-8 (a Latin-1 file name): the replacement character
        }
    }
  }
  out += '"';
}

void newline(std::string& out, int indent, int depth) {
  out += '\n';
  out.append(static_cast<size_t>(indent) * depth, ' ');
}

}  // namespace

Json Json::object() { return Json(ObjectTag{}); }

Json Json::parse(std::string_view text, std::string_view source) {
  return Parser(text, source).parse_document();
}

std::string_view Json::type_name() const {
  switch (type()) {
    case Type::Null: return "null";
    case Type::Bool: return "bool";
    case Type::Number: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

void Json::type_error(std::string_view expected) const {
  fail("JSON: expected {}, got {}", expected, type_name());
}

bool Json::as_bool() const {
  if (!is_bool()) type_error("bool");
  return std::get<bool>(value_);
}

double Json::as_number() const {
  if (!is_number()) type_error("number");
  return std::get<double>(value_);
}

int64_t Json::as_int() const {
  const double value = as_number();
  // 2^63 is exactly representable; every double below it in magnitude fits in int64.
  SCALPEL_CHECK(value == std::floor(value) && value >= -9223372036854775808.0 &&
                    value < 9223372036854775808.0,
                "JSON: expected an integer, got {}", value);
  return static_cast<int64_t>(value);
}

const std::string& Json::as_string() const {
  if (!is_string()) type_error("string");
  return std::get<std::string>(value_);
}

const Json::Array& Json::as_array() const {
  if (!is_array()) type_error("array");
  return std::get<Array>(value_);
}

Json::Array& Json::as_array() {
  if (!is_array()) type_error("array");
  return std::get<Array>(value_);
}

const Json::Object& Json::as_object() const {
  if (!is_object()) type_error("object");
  return std::get<Object>(value_);
}

Json::Object& Json::as_object() {
  if (!is_object()) type_error("object");
  return std::get<Object>(value_);
}

Json& Json::operator[](std::string_view key) {
  if (is_null()) value_ = Object{};
  Object& members = as_object();
  for (Member& member : members) {
    if (member.first == key) return member.second;
  }
  members.emplace_back(std::string(key), Json());
  return members.back().second;
}

const Json* Json::find(std::string_view key) const {
  for (const Member& member : as_object()) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

const Json& Json::at(std::string_view key) const {
  const Json* value = find(key);
  SCALPEL_CHECK(value != nullptr, "JSON: missing key \"{}\"", key);
  return *value;
}

Json& Json::at(std::string_view key) {
  return const_cast<Json&>(static_cast<const Json&>(*this).at(key));
}

const Json& Json::at(size_t index) const {
  const Array& items = as_array();
  SCALPEL_CHECK(index < items.size(), "JSON: index {} out of range for an array of {}", index,
                items.size());
  return items[index];
}

Json& Json::at(size_t index) {
  return const_cast<Json&>(static_cast<const Json&>(*this).at(index));
}

void Json::push_back(Json value) {
  if (is_null()) value_ = Array{};
  as_array().push_back(std::move(value));
}

size_t Json::size() const {
  if (is_array()) return as_array().size();
  if (is_object()) return as_object().size();
  type_error("array or object");
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

void Json::dump_to(std::string& out, int indent, int depth) const {
  switch (type()) {
    case Type::Null: out += "null"; return;
    case Type::Bool: out += as_bool() ? "true" : "false"; return;
    case Type::Number: {
      const double value = as_number();
      // fmt's "{}" is the shortest representation that reads back as the same double.
      out += std::isfinite(value) ? fmt::format("{}", value) : "null";
      return;
    }
    case Type::String: dump_string(out, as_string()); return;
    case Type::Array: {
      const Array& items = as_array();
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ',';
        if (indent >= 0) newline(out, indent, depth + 1);
        items[i].dump_to(out, indent, depth + 1);
      }
      if (indent >= 0 && !items.empty()) newline(out, indent, depth);
      out += ']';
      return;
    }
    case Type::Object: {
      const Object& members = as_object();
      out += '{';
      for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out += ',';
        if (indent >= 0) newline(out, indent, depth + 1);
        dump_string(out, members[i].first);
        out += indent >= 0 ? ": " : ":";
        members[i].second.dump_to(out, indent, depth + 1);
      }
      if (indent >= 0 && !members.empty()) newline(out, indent, depth);
      out += '}';
      return;
    }
  }
}

}  // namespace scalpel
