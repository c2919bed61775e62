#include "data/csv.h"

#include <sstream>

#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace scalpel::data {

int CsvTable::find(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

int CsvTable::require(const std::string& name) const {
  int i = find(name);
  SCALPEL_CHECK(i >= 0, "CSV '{}' has no column '{}' (columns: {})", source, name,
                fmt::join(header, ", "));
  return i;
}

CsvTable parse_csv(const std::string& text, const std::string& source) {
  CsvTable table;
  table.source = source;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  int line = 1;
  std::vector<std::string> record;
  std::string field;
  int record_line = 1;
  bool record_has_content = false;  // distinguishes a blank line from a record of one empty field

  auto end_record = [&]() {
    record.push_back(std::move(field));
    field.clear();
    if (record_has_content) {
      if (table.header.empty()) {
        table.header = std::move(record);
      } else {
        SCALPEL_CHECK(record.size() == table.header.size(),
                      "CSV '{}' line {}: {} fields, but the header has {}", source, record_line,
                      record.size(), table.header.size());
        table.rows.push_back(std::move(record));
        table.row_lines.push_back(record_line);
      }
    }
    record.clear();
    record_has_content = false;
  };

  while (i < text.size()) {
    char ch = text[i];
    if (ch == '"' && field.empty()) {
      record_has_content = true;
      ++i;
      for (;;) {
        SCALPEL_CHECK(i < text.size(), "CSV '{}' line {}: unterminated quoted field", source, record_line);
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (text[i] == '\n') ++line;
        field += text[i++];
      }
      SCALPEL_CHECK(i >= text.size() || text[i] == ',' || text[i] == '\n' || text[i] == '\r',
                    "CSV '{}' line {}: characters after a closing quote", source, line);
      continue;
    }
    if (ch == ',') {
      record.push_back(std::move(field));
      field.clear();
      record_has_content = true;
      ++i;
    } else if (ch == '\r' || ch == '\n') {
      if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++i;
      end_record();
      record_line = ++line;
    } else {
      field += ch;
      record_has_content = true;
      ++i;
    }
  }
  if (record_has_content || !field.empty()) end_record();
  SCALPEL_CHECK(!table.header.empty(), "CSV '{}' is empty (no header line)", source);
  return table;
}

CsvTable read_csv(const std::string& path) { return parse_csv(read_file(path), path); }

std::string csv_escape(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char ch : field) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream text;
  auto write_row = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) text << (i ? "," : "") << csv_escape(row[i]);
    text << "\n";
  };
  write_row(header);
  for (const auto& row : rows) {
    SCALPEL_CHECK(row.size() == header.size(), "write_csv '{}': a row has {} fields, the header {}",
                  path, row.size(), header.size());
    write_row(row);
  }
  write_file_atomic(path, text.str());
}

}  // namespace scalpel::data
