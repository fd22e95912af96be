// Reads a whole file into memory, decompressing it on the way if it is gzip
// (zlib reads plain files unchanged), so every reader accepts `x` and `x.gz`.
#ifndef QFORGE_DATA_FILE_READER_H_
#define QFORGE_DATA_FILE_READER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace qforge {

// NotFound for a missing file; DataLoss for a corrupt or truncated gzip stream;
// InvalidArgument when the (decompressed) content exceeds max_bytes, which guards
// against decompression bombs.
absl::StatusOr<std::string> ReadMaybeGzipFile(const std::string& path,
                                              int64_t max_bytes = int64_t{1} << 32);

}  // namespace qforge

#endif  // QFORGE_DATA_FILE_READER_H_
