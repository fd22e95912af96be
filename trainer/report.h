// The visual report of a run: <dir>/report.html, one self-contained page
// (inline SVG, no network) that shows what quantization did to the models in
// a run's output directory:
//
// - the results table: each model file's size, its top-1 accuracy as the
//   runtime measured it on the test set when it was made, and its latency in
//   the runtime (batch 1, 1 thread, median of 30 runs, measured here);
// - the float training curves (metrics.jsonl) and the QAT curve
//   (qat_metrics.jsonl);
// - per quantized layer of each int8 model, the SQNR between the float
//   model's output of that layer and the int8 model's, both run end to end by
//   the runtime on calibration images (what PyTorch's Numeric Suite compares);
// - for each int8 model's worst layers, the float activations' histogram with
//   the int8 range it was given;
// - the per-channel weight ranges of the depthwise convs, against the
//   per-tensor range one scale would have to cover.
//
// The main job, `ptq` and `qat` write it; `trainer report --output_dir=DIR`
// writes it again from what DIR holds.
#ifndef QFORGE_TRAINER_REPORT_H_
#define QFORGE_TRAINER_REPORT_H_

#include <string>

#include "absl/status/status.h"

namespace qforge {

// Writes `dir`/report.html from the model files (model_float.qfm,
// model_int8_*.qfm), metrics and checkpoint (for the calibration images) in
// `dir`. NotFound without model_float.qfm or a checkpoint.
absl::Status WriteRunReport(const std::string& dir);

}  // namespace qforge

#endif  // QFORGE_TRAINER_REPORT_H_
