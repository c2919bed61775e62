#pragma once
// A tiny FlatBuffers writer for tests (tensor/io/flatbuffer.h reads what it writes): tables
// with scalar and offset fields, strings, vectors of scalars and of tables / strings.
// Objects are laid out front to back, parent before children (FlatBuffers offsets point
// forward), with a vtable right before each table.
//
//   using namespace scalpel::fbtest;
//   ObjPtr model = table({scalar<uint32_t>(0, 3), child(2, list({table({...})}))});
//   std::string bytes = serialize(model, "TFL3");
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace scalpel::fbtest {

struct Obj;
using ObjPtr = std::shared_ptr<Obj>;

struct Field {
  int id = 0;
  std::string scalar;  // little-endian bytes of a scalar field
  ObjPtr child;        // or an offset to an object
};

struct Obj {
  enum class Kind { Table, Bytes, String, List } kind = Kind::Table;
  std::vector<Field> fields;   // Table
  std::string bytes;           // Bytes (the elements' bytes), String
  size_t count = 0;            // Bytes: element count
  std::vector<ObjPtr> items;   // List: tables or strings
};

template <typename T>
Field scalar(int id, T value) {
  std::string bytes(sizeof(T), '\0');
  std::memcpy(bytes.data(), &value, sizeof(T));
  return Field{id, bytes, nullptr};
}
inline Field child(int id, ObjPtr obj) { return Field{id, "", std::move(obj)}; }

inline ObjPtr table(std::vector<Field> fields) {
  auto o = std::make_shared<Obj>();
  o->kind = Obj::Kind::Table;
  o->fields = std::move(fields);
  return o;
}
template <typename T>
ObjPtr vec(const std::vector<T>& values) {
  auto o = std::make_shared<Obj>();
  o->kind = Obj::Kind::Bytes;
  o->count = values.size();
  o->bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(o->bytes.data(), values.data(), o->bytes.size());
  return o;
}
// A [ubyte] vector of raw bytes.
inline ObjPtr bytes(const std::string& data) {
  auto o = std::make_shared<Obj>();
  o->kind = Obj::Kind::Bytes;
  o->count = data.size();
  o->bytes = data;
  return o;
}
inline ObjPtr str(const std::string& text) {
  auto o = std::make_shared<Obj>();
  o->kind = Obj::Kind::String;
  o->bytes = text;
  return o;
}
inline ObjPtr list(std::vector<ObjPtr> items) {
  auto o = std::make_shared<Obj>();
  o->kind = Obj::Kind::List;
  o->items = std::move(items);
  return o;
}

namespace detail {

inline void align(std::string& out, size_t n) {
  while (out.size() % n != 0) out.push_back('\0');
}
inline void put_u32(std::string& out, size_t pos, uint32_t v) { std::memcpy(out.data() + pos, &v, 4); }
inline void append_u32(std::string& out, uint32_t v) {
  out.append(4, '\0');
  put_u32(out, out.size() - 4, v);
}

// Writes `o` at the end of `out`; returns the position offsets to it point at.
inline size_t write(std::string& out, const Obj& o) {
  struct Pending {
    size_t slot;
    const Obj* obj;
  };
  std::vector<Pending> pending;
  size_t pos = 0;
  switch (o.kind) {
    case Obj::Kind::Bytes:
    case Obj::Kind::String: {
      align(out, 4);
      pos = out.size();
      append_u32(out, static_cast<uint32_t>(o.kind == Obj::Kind::Bytes ? o.count : o.bytes.size()));
      out += o.bytes;
      if (o.kind == Obj::Kind::String) out.push_back('\0');
      return pos;
    }
    case Obj::Kind::List: {
      align(out, 4);
      pos = out.size();
      append_u32(out, static_cast<uint32_t>(o.items.size()));
      for (const ObjPtr& item : o.items) {
        pending.push_back({out.size(), item.get()});
        append_u32(out, 0);
      }
      break;
    }
    case Obj::Kind::Table: {
      int max_id = -1;
      for (const Field& f : o.fields) max_id = std::max(max_id, f.id);
      // Table layout: soffset, then each field (4-byte slots, 8 for 8-byte scalars).
      std::vector<uint16_t> offsets(static_cast<size_t>(max_id + 1), 0);
      uint16_t size = 4;
      for (const Field& f : o.fields) {
        const size_t n = f.child ? 4 : f.scalar.size();
        offsets[static_cast<size_t>(f.id)] = size;
        size = static_cast<uint16_t>(size + (n <= 4 ? 4 : n));
      }
      align(out, 4);
      const size_t vtable = out.size();
      std::vector<uint16_t> vt = {static_cast<uint16_t>(4 + 2 * offsets.size()), size};
      vt.insert(vt.end(), offsets.begin(), offsets.end());
      out.append(reinterpret_cast<const char*>(vt.data()), vt.size() * 2);
      align(out, 4);
      pos = out.size();
      const int32_t to_vtable = static_cast<int32_t>(pos - vtable);
      out.append(size, '\0');
      std::memcpy(out.data() + pos, &to_vtable, 4);
      for (const Field& f : o.fields) {
        const size_t at = pos + offsets[static_cast<size_t>(f.id)];
        if (f.child) {
          pending.push_back({at, f.child.get()});
        } else {
          std::memcpy(out.data() + at, f.scalar.data(), f.scalar.size());
        }
      }
      break;
    }
  }
  for (const Pending& p : pending) {
    const size_t target = write(out, *p.obj);
    put_u32(out, p.slot, static_cast<uint32_t>(target - p.slot));
  }
  return pos;
}

}  // namespace detail

// The whole buffer: root offset, 4-byte identifier (may be ""), then the root table.
inline std::string serialize(const ObjPtr& root, const std::string& identifier = "") {
  std::string out(4, '\0');
  out += identifier;
  const size_t pos = detail::write(out, *root);
  detail::put_u32(out, 0, static_cast<uint32_t>(pos));
  return out;
}

}  // namespace scalpel::fbtest
