#include "trainer/checkpoint.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"
#include "zlib.h"

namespace qforge {
namespace {

// Checkpoint.checksum (field 15, fixed32): its tag, and the tag plus the
// little-endian CRC that begin a checksummed file.
constexpr unsigned char kChecksumTag = (15 << 3) | 5;
constexpr size_t kChecksumPrefixBytes = 5;
// The first tags of files without a checksum: Checkpoint.config (1) and
// Checkpoint.tensors (4), both length-delimited.
constexpr unsigned char kConfigTag = (1 << 3) | 2;
constexpr unsigned char kTensorsTag = (4 << 3) | 2;

std::string ChecksumPrefix(std::string_view body) {
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  std::string prefix(1, static_cast<char>(kChecksumTag));
  for (int i = 0; i < 4; ++i) prefix += static_cast<char>((crc >> (8 * i)) & 0xff);
  return prefix;
}

// `bytes` to `path`.tmp, fsync, rename to `path`.
absl::Status WriteFileAtomically(const std::string& bytes, const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) return absl::InternalError(absl::StrCat("cannot create ", tmp));
  // fsync before the rename: after a power loss the new name must not point
  // at data that never reached the disk.
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size() &&
                       std::fflush(file) == 0 && fsync(fileno(file)) == 0;
  if (std::fclose(file) != 0 || !written) {
    return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

void CaptureTensors(const ParameterStore& store, Checkpoint& checkpoint) {
  for (int id = 0; id < store.count(); ++id) {
    const ParamInfo& info = store.info(id);
    NamedTensor* t = checkpoint.add_tensors();
    t->set_name(info.name);
    for (int64_t d : info.shape) t->add_shape(d);
    t->set_data(std::string(reinterpret_cast<const char*>(store.value(id)),
                            info.size * sizeof(float)));
  }
}

absl::Status RestoreTensors(const Checkpoint& checkpoint, ParameterStore& store) {
  for (int id = 0; id < store.count(); ++id) {
    const ParamInfo& info = store.info(id);
    const NamedTensor* found = nullptr;
    for (const NamedTensor& t : checkpoint.tensors()) {
      if (t.name() == info.name) found = &t;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint has no tensor ", info.name));
    }
    const std::vector<int64_t> shape(found->shape().begin(), found->shape().end());
    if (shape != info.shape) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor ", info.name, " has shape [",
                                                     absl::StrJoin(shape, ", "),
                                                     "] where the model's is [",
                                                     absl::StrJoin(info.shape, ", "), "]"));
    }
    if (found->data().size() != info.size * sizeof(float)) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint tensor ", info.name, " holds ",
                                                     found->data().size(), " bytes, not ",
                                                     info.size * sizeof(float)));
    }
    std::memcpy(store.value(id), found->data().data(), found->data().size());
  }
  return absl::OkStatus();
}

void CaptureState(const ParameterStore& params, Sgd& sgd, Checkpoint& checkpoint) {
  checkpoint.clear_tensors();
  CaptureTensors(params, checkpoint);
  const std::vector<float>& momentum = sgd.momentum_buffer();
  checkpoint.set_momentum(std::string(reinterpret_cast<const char*>(momentum.data()),
                                      momentum.size() * sizeof(float)));
}

absl::Status RestoreState(const Checkpoint& checkpoint, ParameterStore& params, Sgd& sgd) {
  if (absl::Status s = RestoreTensors(checkpoint, params); !s.ok()) return s;
  const std::string& momentum = checkpoint.momentum();
  if (!momentum.empty() && momentum.size() != params.values().size() * sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint momentum has ", momentum.size() / sizeof(float), " values for ",
        params.values().size(), " parameters"));
  }
  std::vector<float>& buffer = sgd.momentum_buffer();
  buffer.resize(momentum.size() / sizeof(float));
  if (!momentum.empty()) std::memcpy(buffer.data(), momentum.data(), momentum.size());
  return absl::OkStatus();
}

absl::Status MergeTextProtoFile(const std::string& path, google::protobuf::Message* message) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the config"));
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  if (!google::protobuf::TextFormat::MergeFromString(text, message)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a text-format ", message->GetDescriptor()->name()));
  }
  return absl::OkStatus();
}

absl::Status KeepFirstLines(const std::string& path, int count) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; static_cast<int>(lines.size()) < count && std::getline(in, line);) {
    lines.push_back(line);
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& line : lines) out << line << "\n";
  if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status WriteProtoAtomically(const google::protobuf::MessageLite& message,
                                  const std::string& path) {
  return WriteFileAtomically(message.SerializeAsString(), path);
}

absl::Status WriteCheckpoint(Checkpoint checkpoint, const std::string& path) {
  checkpoint.clear_checksum();
  const std::string body = checkpoint.SerializeAsString();
  // Only a sound file may replace the previous one: after a fallback to
  // .prev, the damaged latest must not overwrite it.
  if (ReadCheckpoint(path).ok()) {
    // Link, then rename over the old .prev: `path` itself is never missing.
    const std::string prev = PreviousCheckpointPath(path);
    const std::string link = prev + ".tmp";
    std::error_code ec;
    std::filesystem::remove(link, ec);
    std::filesystem::create_hard_link(path, link, ec);
    if (ec) {  // a filesystem without hard links (FAT, some network mounts)
      ec.clear();
      std::filesystem::copy_file(path, link, std::filesystem::copy_options::overwrite_existing, ec);
    }
    if (!ec) std::filesystem::rename(link, prev, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot keep ", path, " as ", prev, ": ",
                                                    ec.message()));
  }
  return WriteFileAtomically(ChecksumPrefix(body) + body, path);
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  // An empty message parses, but no writer makes an empty checkpoint.
  if (bytes.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty file"));
  const unsigned char first = static_cast<unsigned char>(bytes[0]);
  if (first == kChecksumTag) {
    if (bytes.size() < kChecksumPrefixBytes ||
        bytes.compare(0, kChecksumPrefixBytes,
                      ChecksumPrefix(std::string_view(bytes).substr(kChecksumPrefixBytes))) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": checksum mismatch (the file is truncated or damaged)"));
    }
  } else if (first != kConfigTag && first != kTensorsTag) {
    // Every writer without a checksum began with the config or the tensors;
    // anything else is a damaged first byte, which would skip the check.
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a qforge checkpoint"));
  }
  Checkpoint checkpoint;
  // Fields this version does not know mean damage (a flipped first byte turns
  // the checksum into one) or a newer qforge; either way, not this checkpoint.
  if (!checkpoint.ParseFromString(bytes) ||
      !checkpoint.GetReflection()->GetUnknownFields(checkpoint).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a qforge checkpoint"));
  }
  return checkpoint;
}

std::string PreviousCheckpointPath(const std::string& path) { return path + ".prev"; }

absl::StatusOr<Checkpoint> ReadLatestCheckpoint(const std::string& path) {
  absl::StatusOr<Checkpoint> latest = ReadCheckpoint(path);
  if (latest.ok()) return latest;
  const std::string prev = PreviousCheckpointPath(path);
  absl::StatusOr<Checkpoint> previous = ReadCheckpoint(prev);
  if (!previous.ok()) return latest.status();
  std::fprintf(stderr, "warning: %s; continuing from the previous checkpoint, %s (epoch %d)\n",
               std::string(latest.status().message()).c_str(), prev.c_str(), previous->epoch());
  return previous;
}

}  // namespace qforge
