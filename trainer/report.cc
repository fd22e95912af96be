#include "trainer/report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/batch_loader.h"
#include "runtime/interpreter.h"
#include "runtime/model_loader.h"
#include "runtime/model_validator.h"
#include "trainer/checkpoint.h"
#include "trainer/svg_chart.h"
#include "trainer/train.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

constexpr int kImages = 32;        // calibration images run through every model
constexpr int kWorstLayers = 2;    // histograms per int8 model
constexpr int kHistogramBins = 80;
constexpr double kLowSqnr = 20;  // dB; bars below it are drawn in red
constexpr int64_t kMaxSampled = 200000;  // activation values kept per layer
constexpr int kWarmupRuns = 3, kTimedRuns = 30;  // latency
constexpr double kMaxSqnr = 99;  // dB shown for an exact layer

struct Variant {
  std::string label;  // "float", "int8 per_channel_histogram", ...
  std::string file;
  Model model;
  int64_t bytes = 0;
  double latency_ms = 0;
};

// Per layer of an int8 model against the float model, over the images.
struct LayerError {
  std::string name;
  double signal = 0, noise = 0;  // sums of f^2 and (f - q)^2
  // In [-kMaxSqnr, kMaxSqnr]; the lowest for a layer of NaNs or zeros.
  double Sqnr() const {
    if (std::isnan(signal) || std::isnan(noise) || !(signal > 0)) return -kMaxSqnr;
    if (!(noise > 0)) return kMaxSqnr;
    return std::clamp(10 * std::log10(signal / noise), -kMaxSqnr, kMaxSqnr);
  }
};

// The `"key": number` fields of each line of a JSON-lines metrics file (true
// and false read as 1 and 0); empty if the file is absent.
std::vector<std::map<std::string, double>> ReadMetrics(const fs::path& path) {
  std::vector<std::map<std::string, double>> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::map<std::string, double> row;
    size_t pos = 0;
    while ((pos = line.find('"', pos)) != std::string::npos) {
      const size_t end = line.find('"', pos + 1);
      if (end == std::string::npos || line.compare(end + 1, 2, ": ") != 0) break;
      const std::string key = line.substr(pos + 1, end - pos - 1);
      const char* value = line.c_str() + end + 3;
      if (std::strncmp(value, "true", 4) == 0) row[key] = 1;
      else if (std::strncmp(value, "false", 5) == 0) row[key] = 0;
      else row[key] = std::strtod(value, nullptr);
      pos = end + 1;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// The model with every op's output also a model output, so one run keeps all.
Model ExposeAll(Model model) {
  model.clear_outputs();
  for (const Op& op : model.ops()) model.add_outputs(op.outputs(0));
  return model;
}

// Of a tensor of a model the runtime has validated (ReadModelFile).
int64_t Elements(const Tensor& t) { return *ElementCount(t); }

absl::StatusOr<std::unique_ptr<Interpreter>> Make(const Model& model) {
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled =
      CompiledModel::FromModel(model, LoadLimits::None());
  if (!compiled.ok()) return compiled.status();
  return Interpreter::Create(*compiled, {Backend::kFast, 1});
}

// Median ms of kTimedRuns runs on one image, after kWarmupRuns.
absl::StatusOr<double> Latency(const Model& model, const float* image) {
  absl::StatusOr<std::unique_ptr<Interpreter>> in = Make(model);
  if (!in.ok()) return in.status();
  std::vector<double> ms;
  for (int i = 0; i < kWarmupRuns + kTimedRuns; ++i) {
    std::memcpy((*in)->input_data(0), image, Elements((*in)->input_tensor(0)) * sizeof(float));
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = (*in)->Invoke(); !s.ok()) return s;
    if (i >= kWarmupRuns) {
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

// Each op's output as floats (int8 ones dequantized), by op name, for one image.
absl::StatusOr<std::map<std::string, std::vector<float>>> LayerOutputs(Interpreter& in,
                                                                       const Model& model,
                                                                       const float* image) {
  std::memcpy(in.input_data(0), image, Elements(in.input_tensor(0)) * sizeof(float));
  if (absl::Status s = in.Invoke(); !s.ok()) return s;
  std::map<std::string, std::vector<float>> outputs;
  for (int k = 0; k < model.ops_size(); ++k) {
    const Tensor& t = in.output_tensor(k);
    std::vector<float>& values = outputs[model.ops(k).name()];
    values.resize(Elements(t));
    if (t.type() == INT8) {
      const auto* q = static_cast<const int8_t*>(in.output_data(k));
      const float scale = t.quantization().scale(0);
      const int zero = t.quantization().zero_point_size() > 0 ? t.quantization().zero_point(0) : 0;
      for (size_t i = 0; i < values.size(); ++i) values[i] = scale * (q[i] - zero);
    } else {
      std::memcpy(values.data(), in.output_data(k), values.size() * sizeof(float));
    }
  }
  return outputs;
}

// The first kImages calibration images of the run whose checkpoint is in
// `dir`, normalized as the models expect them.
absl::StatusOr<std::vector<float>> CalibrationImages(const fs::path& dir) {
  fs::path checkpoint_path = dir / "checkpoint.pb";
  if (!fs::exists(checkpoint_path)) checkpoint_path = dir / "qat_checkpoint.pb";
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(checkpoint_path.string());
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<Dataset> train = LoadTrainingSet(checkpoint->config());
  if (!train.ok()) return train.status();
  LoaderOptions options;
  options.batch_size = kImages;
  options.seed = checkpoint->config().seed();
  options.decode_threads = checkpoint->config().decode_threads();
  options.normalization = DatasetNormalization(*train);
  absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(*train, options);
  if (!loader.ok()) return loader.status();
  (*loader)->StartEpoch(0);
  Batch batch;
  if (!(*loader)->Next(&batch)) {
    if (!(*loader)->status().ok()) return (*loader)->status();
    return absl::InternalError("no calibration images");
  }
  return batch.images;
}

// The models in `dir`: float first, then int8 ones in name order, QAT last.
absl::StatusOr<std::vector<Variant>> LoadVariants(const fs::path& dir) {
  std::vector<Variant> variants;
  std::vector<fs::path> int8_files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, "model_int8_") && absl::EndsWith(name, ".qfm")) {
      int8_files.push_back(e.path());
    }
  }
  std::sort(int8_files.begin(), int8_files.end(), [](const fs::path& a, const fs::path& b) {
    const bool qa = a.filename() == "model_int8_qat.qfm", qb = b.filename() == "model_int8_qat.qfm";
    return qa != qb ? qb : a < b;
  });
  std::vector<fs::path> files = {dir / "model_float.qfm"};
  files.insert(files.end(), int8_files.begin(), int8_files.end());
  for (const fs::path& file : files) {
    absl::StatusOr<Model> model = ReadModelFile(file.string());
    if (!model.ok()) return model.status();
    std::string label = file.stem().string();
    label = label == "model_float" ? "float" : "int8 " + label.substr(strlen("model_int8_"));
    variants.push_back({label, file.filename().string(), *std::move(model),
                        static_cast<int64_t>(fs::file_size(file))});
  }
  return variants;
}

std::string Percent(bool measured, double fraction) {
  return measured ? absl::StrFormat("%.2f%%", 100 * fraction) : "not measured";
}

// Top-5 has a column when some model recorded it (more than 10 classes).
std::string ResultsTable(const std::vector<Variant>& variants) {
  const bool top5 = std::any_of(variants.begin(), variants.end(), [](const Variant& v) {
    return v.model.metadata().accuracy_top5() > 0;
  });
  std::string html = absl::StrCat(
      "<table><tr><th>model</th><th>file</th><th>size</th><th>vs float</th><th>top-1 "
      "(runtime)</th>", top5 ? "<th>top-5 (runtime)</th>" : "",
      "<th>test images</th><th>latency<br>batch 1, 1 thread</th></tr>");
  for (const Variant& v : variants) {
    const Metadata& m = v.model.metadata();
    const bool measured = m.accuracy_images() > 0;
    absl::StrAppendFormat(&html, "<tr><td>%s</td><td>%s</td><td>%.1f KB</td><td>%.3fx</td><td>%s</td>",
                          svg::Escape(v.label), svg::Escape(v.file), v.bytes / 1e3,
                          static_cast<double>(v.bytes) / variants[0].bytes,
                          Percent(measured, m.accuracy_top1()));
    if (top5) {
      absl::StrAppend(&html, "<td>", Percent(measured && m.accuracy_top5() > 0, m.accuracy_top5()),
                      "</td>");
    }
    absl::StrAppendFormat(&html, "<td>%d</td><td>%.3f ms</td></tr>", m.accuracy_images(),
                          v.latency_ms);
  }
  return html + "</table>";
}

// (epoch, 100 * row[key]) if the row has both; a line cut short by a crash has not.
void AddPoint(const std::map<std::string, double>& row, const std::string& key, svg::Series& series) {
  const auto epoch = row.find("epoch"), value = row.find(key);
  if (epoch != row.end() && value != row.end()) {
    series.points.push_back({epoch->second, 100 * value->second});
  }
}

std::string Curves(const fs::path& dir) {
  std::string html;
  const auto train = ReadMetrics(dir / "metrics.jsonl");
  if (!train.empty()) {
    svg::Series train_acc{"train (float)", {}}, test_acc{"test (float)", {}},
        test_top5{"test top-5 (float)", {}};
    for (const auto& row : train) {
      AddPoint(row, "train_accuracy", train_acc);
      AddPoint(row, "test_accuracy", test_acc);
      AddPoint(row, "test_top5", test_top5);
    }
    std::vector<svg::Series> series = {train_acc, test_acc};
    if (!test_top5.points.empty()) series.push_back(test_top5);
    html += svg::LineChart("Float training", "epoch",
                           test_top5.points.empty() ? "top-1 %" : "top-1 and top-5 %", series);
  }
  const auto qat = ReadMetrics(dir / "qat_metrics.jsonl");
  if (!qat.empty()) {
    svg::Series train_acc{"train (fake quant)", {}}, int8{"test, int8 in the runtime", {}};
    for (const auto& row : qat) {
      AddPoint(row, "train_accuracy", train_acc);
      AddPoint(row, "int8_accuracy", int8);
    }
    html += svg::LineChart("Quantization-aware training", "QAT epoch", "top-1 %", {train_acc, int8});
  }
  return html.empty() ? "<p>No metrics files in this directory.</p>" : html;
}

// The int8 range [scale * (-128 - zp), scale * (127 - zp)] of op `name`'s output.
std::pair<double, double> Int8Range(const Model& model, const std::string& name) {
  for (const Op& op : model.ops()) {
    if (op.name() != name) continue;
    const Quantization& q = model.tensors(op.outputs(0)).quantization();
    const double s = q.scale(0), z = q.zero_point_size() > 0 ? q.zero_point(0) : 0;
    return {s * (-128 - z), s * (127 - z)};
  }
  return {0, 0};
}

std::string DepthwiseRanges(const Model& float_model) {
  std::string html;
  for (const Op& op : float_model.ops()) {
    if (op.kind() != CONV2D || op.conv2d().groups() <= 1) continue;
    const Tensor& w = float_model.tensors(op.inputs(1));
    const int64_t channels = w.shape(0), per_channel = Elements(w) / channels;
    std::vector<float> values(Elements(w));
    std::memcpy(values.data(), w.data().data(), values.size() * sizeof(float));
    std::vector<double> mins(channels), maxs(channels);
    for (int64_t c = 0; c < channels; ++c) {
      const auto [lo, hi] = std::minmax_element(values.begin() + c * per_channel,
                                                values.begin() + (c + 1) * per_channel);
      mins[c] = *lo, maxs[c] = *hi;
    }
    html += svg::RangeChart(absl::StrCat(op.name(), " (", channels, " channels)"), mins, maxs);
  }
  return html;
}

class Report {
 public:
  explicit Report(fs::path dir) : dir_(std::move(dir)) {}

  absl::Status Write() {
    absl::StatusOr<std::vector<Variant>> variants = LoadVariants(dir_);
    if (!variants.ok()) return variants.status();
    absl::StatusOr<std::vector<float>> images = CalibrationImages(dir_);
    if (!images.ok()) return images.status();
    for (Variant& v : *variants) {
      absl::StatusOr<double> ms = Latency(v.model, images->data());
      if (!ms.ok()) return ms.status();
      v.latency_ms = *ms;
    }
    std::string layers, worst;
    for (size_t i = 1; i < variants->size(); ++i) {
      absl::Status s = CompareLayers((*variants)[0], (*variants)[i], *images, layers, worst);
      if (!s.ok()) return s;
    }
    std::string html = Page(*variants, layers, worst);
    const fs::path path = dir_ / "report.html";
    const fs::path temporary = dir_ / "report.html.tmp";
    std::ofstream out(temporary);
    out << html;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", temporary.string()));
    out.close();
    std::error_code ec;
    fs::rename(temporary, path, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot write ", path.string(), ": ", ec.message()));
    return absl::OkStatus();
  }

 private:
  // Runs the float and one int8 model on the images, layer by layer; appends
  // the SQNR chart to `layers` and the worst layers' histograms to `worst`.
  absl::Status CompareLayers(const Variant& f, const Variant& q, const std::vector<float>& images,
                             std::string& layers, std::string& worst) {
    const Model float_all = ExposeAll(f.model), int8_all = ExposeAll(q.model);
    absl::StatusOr<std::unique_ptr<Interpreter>> fi = Make(float_all), qi = Make(int8_all);
    if (!fi.ok()) return fi.status();
    if (!qi.ok()) return qi.status();
    const int64_t image_size = Elements((*fi)->input_tensor(0));
    // The int8 model's layers that the float model has too, in op order.
    std::vector<LayerError> errors;
    for (const Op& op : q.model.ops()) {
      if (q.model.tensors(op.outputs(0)).type() != INT8) continue;
      for (const Op& fop : f.model.ops()) {
        if (fop.name() == op.name()) errors.push_back({op.name()});
      }
    }
    std::map<std::string, std::vector<float>> samples;  // float values, per layer
    for (int64_t i = 0; (i + 1) * image_size <= static_cast<int64_t>(images.size()); ++i) {
      auto fo = LayerOutputs(**fi, float_all, images.data() + i * image_size);
      auto qo = LayerOutputs(**qi, int8_all, images.data() + i * image_size);
      if (!fo.ok()) return fo.status();
      if (!qo.ok()) return qo.status();
      for (LayerError& e : errors) {
        const std::vector<float>& x = fo->at(e.name);
        const std::vector<float>& y = qo->at(e.name);
        if (x.size() != y.size()) continue;
        Accumulate(x, y, e, samples[e.name]);
      }
    }
    std::vector<std::string> names;
    std::vector<double> sqnr;
    for (const LayerError& e : errors) {
      names.push_back(e.name);
      sqnr.push_back(e.Sqnr());
    }
    layers += svg::BarChart(absl::StrCat("SQNR per layer, ", q.label, " against float (dB)"),
                            names, sqnr, "SQNR dB", kLowSqnr);
    std::stable_sort(errors.begin(), errors.end(),
                     [](const LayerError& a, const LayerError& b) { return a.Sqnr() < b.Sqnr(); });
    for (int k = 0; k < kWorstLayers && k < static_cast<int>(errors.size()); ++k) {
      worst += WorstLayerHistogram(q, errors[k], samples[errors[k].name]);
    }
    return absl::OkStatus();
  }

  // Adds one image's float (x) and int8 (y) outputs of a layer to its sums,
  // and keeps every so many float values for its histogram.
  static void Accumulate(const std::vector<float>& x, const std::vector<float>& y, LayerError& e,
                         std::vector<float>& kept) {
    const size_t stride = std::max<size_t>(1, x.size() * kImages / kMaxSampled);
    for (size_t j = 0; j < x.size(); ++j) {
      e.signal += double{x[j]} * x[j];
      e.noise += (double{x[j]} - y[j]) * (double{x[j]} - y[j]);
      if (j % stride == 0 && std::isfinite(x[j])) kept.push_back(x[j]);
    }
  }

  static std::string WorstLayerHistogram(const Variant& q, const LayerError& e,
                                         const std::vector<float>& values) {
    const auto [range_lo, range_hi] = Int8Range(q.model, e.name);
    double lo = range_lo, hi = range_hi;
    for (float v : values) {
      lo = std::min<double>(lo, v);
      hi = std::max<double>(hi, v);
    }
    if (!(hi > lo)) hi = lo + 1;
    std::vector<double> counts(kHistogramBins);
    for (float v : values) {
      const double bin = std::floor((v - lo) / (hi - lo) * kHistogramBins);
      ++counts[static_cast<size_t>(std::clamp(bin, 0.0, kHistogramBins - 1.0))];
    }
    return svg::Histogram(
        absl::StrFormat("%s, %s: float activations (SQNR %.1f dB)", e.name, q.label, e.Sqnr()),
        counts, lo, hi, range_lo, range_hi,
        absl::StrFormat("int8 range [%.3g, %.3g]", range_lo, range_hi));
  }

  std::string Page(const std::vector<Variant>& variants, const std::string& layers,
                   const std::string& worst) const {
    const Metadata& m = variants[0].model.metadata();
    return absl::StrCat(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>qforge report: ",
        svg::Escape(dir_.filename().string()), "</title><style>", kStyle, "</style><script>",
        kCatchErrors, "</script></head><body>",
        "<h1>qforge run report</h1><p>", svg::Escape(dir_.string()), " &middot; dataset ",
        svg::Escape(m.dataset()), " &middot; ", m.class_names_size(), " classes &middot; SQNR and "
        "histograms over ", kImages, " calibration images</p>",
        "<section id=\"results\"><h2>Results</h2>", ResultsTable(variants), "</section>",
        "<section id=\"training\"><h2>Training</h2>", Curves(dir_), "</section>",
        "<section id=\"sqnr\"><h2>Per-layer SQNR: float against int8, run end to end</h2>"
        "<p>10 log10(sum f&sup2; / sum (f &minus; q)&sup2;) of each quantized layer's output; "
        "bars under ", kLowSqnr, " dB in red.</p>", layers, "</section>",
        "<section id=\"worst\"><h2>Worst layers: float activations and the int8 range they "
        "got</h2>", worst, "</section>",
        "<section id=\"depthwise\"><h2>Depthwise conv weights: each channel's range against the "
        "layer's</h2><p>One scale per tensor must cover the dashed range; per-channel scales cover "
        "each bar.</p><div class=\"grid\">", DepthwiseRanges(variants[0].model), "</div></section>",
        "<script>", kCheck, "</script></body></html>\n");
  }

  static constexpr const char* kStyle =
      "body{font-family:DejaVu Sans,sans-serif;margin:24px;color:#222}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
      "td:first-child,th:first-child{text-align:left}td{white-space:nowrap}svg.chart{display:block;margin:10px 0}"
      ".grid{display:flex;flex-wrap:wrap;gap:4px}.grid svg.chart{margin:0}"
      ".title{font-weight:bold;font-size:14px}.tick{font-size:10px;fill:#555}"
      ".label,.legend{font-size:12px}.axis{stroke:#333}.grid line,.grid{stroke-opacity:1}"
      "line.grid{stroke:#eee}";
  // Records any script error on the page, for a headless browser to read.
  static constexpr const char* kCatchErrors =
      "window.addEventListener('error',function(e){document.documentElement.setAttribute("
      "'data-script-error',String(e.message));});";
  // Counts, per section, the charts and those whose marks (bars, lines, points) drew
  // with a real size, so a headless browser can tell a rendered report from a
  // broken one: data-charts-<section>="charts/drawn" on <html>.
  static constexpr const char* kCheck =
      "document.querySelectorAll('section').forEach(function(s){"
      "var charts=s.querySelectorAll('svg.chart'),drawn=0;"
      "charts.forEach(function(c){var ok=false;"
      "c.querySelectorAll('rect.bar,polyline.series,circle').forEach(function(m){"
      "var b=m.getBBox();if(b.width>0&&b.height>0)ok=true;});if(ok)drawn++;});"
      "document.documentElement.setAttribute('data-charts-'+s.id,charts.length+'/'+drawn);});"
      "document.documentElement.setAttribute('data-rows',"
      "document.querySelectorAll('#results tr').length-1);";

  const fs::path dir_;
};

}  // namespace

absl::Status WriteRunReport(const std::string& dir) {
  if (!fs::exists(fs::path(dir) / "model_float.qfm")) {
    return absl::NotFoundError(absl::StrCat(dir, " has no model_float.qfm to report on"));
  }
  return Report(dir).Write();
}

}  // namespace qforge
