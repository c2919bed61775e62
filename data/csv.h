#pragma once
// A small RFC 4180 CSV reader and writer: comma separated, fields optionally in double
// quotes ("" is a literal quote; quoted fields may hold commas and line breaks), LF or CRLF
// line ends, an optional UTF-8 byte-order mark. The first record is the header. Leniency: a
// quote inside an unquoted field (5'3") is kept as a literal character.
#include <string>
#include <vector>

namespace scalpel::data {

struct CsvTable {
  std::string source;  // file name, for error messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // every row has header.size() fields
  std::vector<int> row_lines;                  // 1-based line where each row starts

  // Index of a column by exact name, or -1.
  int find(const std::string& name) const;
  // Index of a column; throws Error naming the file and the available columns when absent.
  int require(const std::string& name) const;
};

// Throws Error naming `source` and the line for an unterminated quote, a stray quote, or a
// row whose field count differs from the header's; blank lines are skipped.
CsvTable parse_csv(const std::string& text, const std::string& source = "<csv>");
CsvTable read_csv(const std::string& path);

// Quotes a field when it holds a comma, quote, CR or LF.
std::string csv_escape(const std::string& field);
// Writes header + rows through a temporary file and a rename.
void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows);

}  // namespace scalpel::data
