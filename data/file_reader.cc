#include "data/file_reader.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace qforge {

absl::StatusOr<std::string> ReadMaybeGzipFile(const std::string& path, int64_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string content;
  constexpr int kChunk = 1 << 20;
  std::string chunk(kChunk, '\0');
  while (true) {
    const int n = gzread(file, chunk.data(), kChunk);
    if (n < 0) break;  // error details come from gzerror below
    content.append(chunk.data(), n);
    if (static_cast<int64_t>(content.size()) > max_bytes) {
      gzclose(file);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": more than ", max_bytes, " bytes of content"));
    }
    if (n < kChunk) break;
  }
  int errnum = Z_OK;
  const char* message = gzerror(file, &errnum);
  std::string error = (errnum != Z_OK && errnum != Z_STREAM_END) ? message : "";
  gzclose(file);
  if (!error.empty()) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt or truncated: ", error));
  }
  return content;
}

}  // namespace qforge
