#include "trainer/checkpoint.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"

namespace qforge {

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
  const std::string tmp = path + ".tmp";
  const std::string bytes = message.SerializeAsString();
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

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  Checkpoint checkpoint;
  if (!checkpoint.ParseFromIstream(&in)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a qforge checkpoint"));
  }
  return checkpoint;
}

}  // namespace qforge
