#include "tools/model_summary.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace qforge {
namespace {

std::string TypeName(ElementType type) {
  switch (type) {
    case FLOAT32:
      return "float32";
    case INT8:
      return "int8";
    case INT32:
      return "int32";
    default:
      return "invalid";
  }
}

std::string ShapeText(const Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.shape(), ", "), "]");
}

// A JSON string literal.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A float as JSON takes it (%.9g round-trips a float; no NaN in a valid model).
std::string Number(float v) { return absl::StrFormat("%.9g", v); }

template <typename Values>
std::string NumberList(const Values& values) {
  std::vector<std::string> parts;
  for (float v : values) parts.push_back(Number(v));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

// "CONV2D 3x3 stride 2 pad 1 groups 32": the kernel size from the weights [O, KH, KW, I].
std::string OpText(const Model& model, const Op& op) {
  std::string text = OpKind_Name(op.kind());
  if (op.kind() == CONV2D && op.inputs_size() >= 2) {
    const Tensor& w = model.tensors(op.inputs(1));
    if (w.shape_size() == 4) absl::StrAppend(&text, " ", w.shape(1), "x", w.shape(2));
    const Conv2DAttributes& a = op.conv2d();
    absl::StrAppend(&text, " stride ", a.stride_h(), " pad ", a.pad_top(), " groups ", a.groups());
  }
  if (op.activation() != ACTIVATION_NONE) absl::StrAppend(&text, " + ", Activation_Name(op.activation()));
  return text;
}

int64_t TotalConstantBytes(const Model& model) {
  int64_t total = 0;
  for (const Tensor& t : model.tensors()) total += static_cast<int64_t>(t.data().size());
  return total;
}

std::string TensorJson(const Model& model, int id) {
  const Tensor& t = model.tensors(id);
  std::string json = absl::StrCat("{\"id\": ", id, ", \"name\": ", Quoted(t.name()),
                                  ", \"shape\": [", absl::StrJoin(t.shape(), ", "),
                                  "], \"type\": ", Quoted(TypeName(t.type())),
                                  ", \"constant_bytes\": ", t.data().size());
  if (t.has_quantization()) {
    const Quantization& q = t.quantization();
    absl::StrAppend(&json, ", \"quantization\": {\"scale\": ", NumberList(q.scale()),
                    ", \"zero_point\": [", absl::StrJoin(q.zero_point(), ", "),
                    "], \"axis\": ", q.axis(), "}");
  }
  return json + "}";
}

std::string TensorListJson(const Model& model, const google::protobuf::RepeatedField<int32_t>& ids) {
  std::vector<std::string> parts;
  for (int id : ids) parts.push_back(TensorJson(model, id));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

std::string PreprocessingJson(const Preprocessing& p) {
  return absl::StrCat("{\"pixel_scale\": ", Number(p.pixel_scale()), ", \"mean\": ",
                      NumberList(p.mean()), ", \"std\": ", NumberList(p.std()),
                      ", \"channel_order\": ", Quoted(p.channel_order()), "}");
}

std::string MetadataJson(const Metadata& m) {
  std::vector<std::string> classes;
  for (const std::string& c : m.class_names()) classes.push_back(Quoted(c));
  return absl::StrCat("{\"class_names\": [", absl::StrJoin(classes, ", "),
                      "], \"producer\": ", Quoted(m.producer()), ", \"dataset\": ",
                      Quoted(m.dataset()), ", \"accuracy_top1\": ", Number(m.accuracy_top1()),
                      ", \"accuracy_images\": ", m.accuracy_images(),
                      ", \"created\": ", Quoted(m.created()), "}");
}

std::string TensorLines(const Model& model, const google::protobuf::RepeatedField<int32_t>& ids) {
  std::vector<std::string> parts;
  for (int id : ids) parts.push_back(DescribeTensor(model.tensors(id)));
  return absl::StrJoin(parts, "; ");
}

}  // namespace

std::string DescribeTensor(const Tensor& t) {
  std::string text = absl::StrCat(t.name(), " ", ShapeText(t), " ", TypeName(t.type()));
  if (!t.has_quantization() || t.quantization().scale_size() == 0) return text;
  const Quantization& q = t.quantization();
  if (q.scale_size() == 1) {
    absl::StrAppendFormat(&text, " s=%.6g", q.scale(0));
    if (q.zero_point_size() == 1) absl::StrAppend(&text, " z=", q.zero_point(0));
    return text;
  }
  const auto [low, high] = std::minmax_element(q.scale().begin(), q.scale().end());
  absl::StrAppendFormat(&text, " per-channel axis %d: %d scales in [%.4g, %.4g]", q.axis(),
                        q.scale_size(), *low, *high);
  return text;
}

int64_t ConstantBytes(const Model& model, const Op& op) {
  int64_t bytes = 0;
  for (int id : op.inputs()) bytes += static_cast<int64_t>(model.tensors(id).data().size());
  return bytes;
}

std::string SummaryText(const Model& model, int64_t file_bytes) {
  std::string text = absl::StrFormat(
      "format %d; %d ops, %d tensors; %lld bytes of constants", model.format_version(),
      model.ops_size(), model.tensors_size(), static_cast<long long>(TotalConstantBytes(model)));
  if (file_bytes > 0) absl::StrAppend(&text, "; file ", file_bytes, " bytes");
  absl::StrAppend(&text, "\ninputs: ", TensorLines(model, model.inputs()),
                  "\noutputs: ", TensorLines(model, model.outputs()), "\n");
  if (model.has_preprocessing()) {
    const Preprocessing& p = model.preprocessing();
    absl::StrAppendFormat(&text, "preprocessing: x = (pixel * %.9g - mean) / std, mean %s, std %s",
                          p.pixel_scale(), NumberList(p.mean()), NumberList(p.std()));
    if (!p.channel_order().empty()) absl::StrAppend(&text, ", channels ", p.channel_order());
    text += "\n";
  }
  if (model.has_metadata()) {
    const Metadata& m = model.metadata();
    absl::StrAppend(&text, "metadata: producer \"", m.producer(), "\", dataset \"", m.dataset(),
                    "\", created ", m.created().empty() ? "-" : m.created());
    if (m.accuracy_images() > 0) {
      absl::StrAppendFormat(&text, ", top-1 %.2f%% on %d images", 100.0 * m.accuracy_top1(),
                            m.accuracy_images());
    }
    // ImageNet's 1000 names would bury the ops; --json has them all.
    constexpr int kShownClasses = 10;
    const int shown = std::min(m.class_names_size(), kShownClasses);
    absl::StrAppend(&text, ", ", m.class_names_size(), " classes (",
                    absl::StrJoin(m.class_names().begin(), m.class_names().begin() + shown, ", "),
                    shown < m.class_names_size() ? ", ..." : "", ")\n");
  }
  absl::StrAppend(&text, "\n| # | op | kind | inputs | outputs | constant bytes |\n",
                  "|---|---|---|---|---|---|\n");
  for (int i = 0; i < model.ops_size(); ++i) {
    const Op& op = model.ops(i);
    absl::StrAppend(&text, "| ", i, " | ", op.name(), " | ", OpText(model, op), " | ",
                    TensorLines(model, op.inputs()), " | ", TensorLines(model, op.outputs()),
                    " | ", ConstantBytes(model, op), " |\n");
  }
  return text;
}

std::string SummaryJson(const Model& model, int64_t file_bytes) {
  std::vector<std::string> ops;
  for (int i = 0; i < model.ops_size(); ++i) {
    const Op& op = model.ops(i);
    ops.push_back(absl::StrCat(
        "{\"index\": ", i, ", \"name\": ", Quoted(op.name()), ", \"kind\": ",
        Quoted(OpKind_Name(op.kind())), ", \"activation\": ", Quoted(Activation_Name(op.activation())),
        ", \"description\": ", Quoted(OpText(model, op)), ", \"inputs\": ",
        TensorListJson(model, op.inputs()), ", \"outputs\": ", TensorListJson(model, op.outputs()),
        ", \"constant_bytes\": ", ConstantBytes(model, op), "}"));
  }
  std::string json = absl::StrCat(
      "{\"format_version\": ", model.format_version(), ", \"file_bytes\": ", file_bytes,
      ", \"constant_bytes\": ", TotalConstantBytes(model), ", \"tensor_count\": ",
      model.tensors_size(), ", \"inputs\": ", TensorListJson(model, model.inputs()),
      ", \"outputs\": ", TensorListJson(model, model.outputs()), ", \"ops\": [",
      absl::StrJoin(ops, ", "), "]");
  if (model.has_preprocessing()) {
    absl::StrAppend(&json, ", \"preprocessing\": ", PreprocessingJson(model.preprocessing()));
  }
  if (model.has_metadata()) absl::StrAppend(&json, ", \"metadata\": ", MetadataJson(model.metadata()));
  return json + "}";
}

}  // namespace qforge
