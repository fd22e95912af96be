// For fuzz targets whose code under test reads files: the input's bytes in a
// file of this process's own, rewritten for every input.
#ifndef QFORGE_FUZZ_FUZZ_FILE_H_
#define QFORGE_FUZZ_FUZZ_FILE_H_

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace qforge {

// A directory of this process's own under TMPDIR (or /tmp).
inline const std::string& FuzzDir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                       "/qforge_fuzz_" + std::to_string(getpid());
    std::filesystem::create_directories(path);
    return path;
  }();
  return dir;
}

// Writes `data` to FuzzDir()/`name` and returns that path.
inline std::string WriteFuzzFile(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = FuzzDir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace qforge

#endif  // QFORGE_FUZZ_FUZZ_FILE_H_
