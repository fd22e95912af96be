#include "trainer/svg_chart.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace qforge::svg {
namespace {

constexpr int kWidth = 900, kHeight = 300;
constexpr int kLeft = 70, kRight = 20, kTop = 36, kBottom = 48;
constexpr int kLegendWidth = 160;       // right of a line chart's plot
constexpr size_t kMaxLabelledBars = 80;  // beyond this, names would overlap
const char* const kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"};

// A linear map from [lo, hi] to [a, b].
struct Scale {
  double lo, hi, a, b;
  double operator()(double v) const { return hi == lo ? (a + b) / 2 : a + (v - lo) / (hi - lo) * (b - a); }
};

// About five round tick values covering [lo, hi].
std::vector<double> Ticks(double lo, double hi) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

std::string Number(double v) { return absl::StrFormat("%.4g", v); }

// The opening tag, background, title and the axis lines of a chart.
std::string Open(const std::string& title, int width = kWidth, int height = kHeight) {
  return absl::StrFormat(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>"
      "<text x=\"%d\" y=\"20\" class=\"title\">%s</text>",
      width, height, width, height, Escape(title), kLeft, Escape(title));
}

// Axes with ticks and labels for the plot area given by xs and ys.
std::string Axes(const Scale& xs, const Scale& ys, const std::string& x_label,
                 const std::string& y_label, bool x_ticks = true) {
  std::string out = absl::StrFormat(
      "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"axis\"/>"
      "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"axis\"/>",
      xs.a, ys.a, xs.b, ys.a, xs.a, ys.a, xs.a, ys.b);
  for (double t : Ticks(ys.lo, ys.hi)) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"grid\"/>"
                          "<text x=\"%g\" y=\"%g\" class=\"tick\" text-anchor=\"end\">%s</text>",
                          xs.a, ys(t), xs.b, ys(t), xs.a - 6, ys(t) + 4, Number(t));
  }
  if (x_ticks) {
    for (double t : Ticks(xs.lo, xs.hi)) {
      absl::StrAppendFormat(&out, "<text x=\"%g\" y=\"%g\" class=\"tick\" text-anchor=\"middle\">%s</text>",
                            xs(t), ys.a + 16, Number(t));
    }
  }
  absl::StrAppendFormat(&out,
                        "<text x=\"%g\" y=\"%g\" class=\"label\" text-anchor=\"middle\">%s</text>"
                        "<text x=\"14\" y=\"%g\" class=\"label\" text-anchor=\"middle\" "
                        "transform=\"rotate(-90 14 %g)\">%s</text>",
                        (xs.a + xs.b) / 2, ys.a + 36, Escape(x_label), (ys.a + ys.b) / 2,
                        (ys.a + ys.b) / 2, Escape(y_label));
  return out;
}

std::pair<double, double> Padded(double lo, double hi) {
  if (!(hi > lo)) return {lo - 1, hi + 1};
  const double pad = (hi - lo) * 0.05;
  return {lo - pad, hi + pad};
}

}  // namespace

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string LineChart(const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const Series& s : series) {
    for (const auto& [x, y] : s.points) {
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  if (!std::isfinite(x_lo)) {  // no points
    x_lo = y_lo = 0;
    x_hi = y_hi = 1;
  }
  std::tie(y_lo, y_hi) = Padded(y_lo, y_hi);
  const Scale xs{x_lo, x_hi, kLeft, static_cast<double>(kWidth - kRight - kLegendWidth)};
  const Scale ys{y_lo, y_hi, kHeight - kBottom, kTop};
  std::string out = Open(title) + Axes(xs, ys, x_label, y_label);
  for (size_t i = 0; i < series.size(); ++i) {
    const char* colour = kColours[i % 6];
    std::string points;
    for (const auto& [x, y] : series[i].points) {
      absl::StrAppendFormat(&points, "%g,%g ", xs(x), ys(y));
    }
    absl::StrAppendFormat(&out, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" "
                          "stroke-width=\"2\" points=\"%s\"/>", colour, points);
    for (const auto& [x, y] : series[i].points) {
      absl::StrAppendFormat(&out, "<circle cx=\"%g\" cy=\"%g\" r=\"3\" fill=\"%s\"><title>%s: %s, %s</title></circle>",
                            xs(x), ys(y), colour, Escape(series[i].name), Number(x), Number(y));
    }
    absl::StrAppendFormat(&out, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                          "<text x=\"%d\" y=\"%d\" class=\"legend\">%s</text>",
                          kWidth - kLegendWidth - 10, kTop + 18 * static_cast<int>(i), colour,
                          kWidth - kLegendWidth + 8,
                          kTop + 10 + 18 * static_cast<int>(i), Escape(series[i].name));
  }
  return out + "</svg>";
}

std::string BarChart(const std::string& title, const std::vector<std::string>& labels,
                     const std::vector<double>& values, const std::string& y_label,
                     double warn_below) {
  // Bars grow from 0, up or down; the scale holds 0 and every value.
  double lo = 0, hi = 0;
  for (double v : values) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const int height = kHeight + 60;  // room for slanted layer names
  const Scale xs{0, static_cast<double>(std::max<size_t>(values.size(), 1)), kLeft,
                 kWidth - kRight};
  const Scale ys{lo * 1.05, hi > lo ? hi * 1.05 : lo + 1, height - kBottom - 60.0, kTop};
  std::string out = Open(title, kWidth, height) + Axes(xs, ys, "", y_label, /*x_ticks=*/false);
  absl::StrAppendFormat(&out, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" class=\"axis\"/>",
                        xs.a, ys(0), xs.b, ys(0));
  const double width = (xs.b - xs.a) / std::max<size_t>(values.size(), 1);
  for (size_t i = 0; i < values.size(); ++i) {
    const double x = xs(static_cast<double>(i)) + width * 0.1;
    const double top = std::min(ys(0), ys(values[i]));
    absl::StrAppendFormat(&out, "<rect class=\"bar\" x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" "
                          "fill=\"%s\"><title>%s: %.1f</title></rect>",
                          x, top, width * 0.8, std::fabs(ys(values[i]) - ys(0)),
                          values[i] < warn_below ? "#d62728" : "#1f77b4", Escape(labels[i]),
                          values[i]);
    if (values.size() <= kMaxLabelledBars) {
      absl::StrAppendFormat(&out, "<text class=\"tick\" text-anchor=\"end\" transform=\"translate(%g %g) rotate(-60)\">%s</text>",
                            x + width * 0.5, ys.a + 8, Escape(labels[i]));
    }
  }
  return out + "</svg>";
}

std::string Histogram(const std::string& title, const std::vector<double>& counts, double lo,
                      double hi, double range_lo, double range_hi, const std::string& range_label) {
  double top = 1;
  for (double c : counts) top = std::max(top, c);
  const Scale xs{lo, hi, kLeft, kWidth - kRight};
  const Scale ys{0, std::log10(top) + 0.2, kHeight - kBottom, kTop};
  std::string out = Open(title) + Axes(xs, ys, "value", "log10(count + 1)");
  const double width = (xs.b - xs.a) / std::max<size_t>(counts.size(), 1);
  for (size_t i = 0; i < counts.size(); ++i) {
    const double y = ys(std::log10(counts[i] + 1));
    absl::StrAppendFormat(&out, "<rect class=\"bar\" x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#7f7f7f\"/>",
                          xs.a + width * i, y, width, ys.a - y);
  }
  for (double v : {range_lo, range_hi}) {
    absl::StrAppendFormat(&out, "<line class=\"range\" x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" "
                          "stroke=\"#d62728\" stroke-width=\"2\"/>",
                          xs(v), ys.a, xs(v), ys.b);
  }
  absl::StrAppendFormat(&out, "<text x=\"%g\" y=\"%g\" class=\"legend\" fill=\"#d62728\">%s</text>",
                        xs(range_hi) + 4 > kWidth - 200 ? xs(range_lo) + 4 : xs(range_hi) + 4,
                        kTop + 12.0, Escape(range_label));
  return out + "</svg>";
}

std::string RangeChart(const std::string& title, const std::vector<double>& mins,
                       const std::vector<double>& maxs) {
  double lo = 0, hi = 0;
  for (size_t i = 0; i < mins.size(); ++i) {
    lo = std::min(lo, mins[i]);
    hi = std::max(hi, maxs[i]);
  }
  const int width = 440, height = 200;
  const Scale xs{0, static_cast<double>(std::max<size_t>(mins.size(), 1)), kLeft, width - 10.0};
  const auto [y_lo, y_hi] = Padded(lo, hi);
  const Scale ys{y_lo, y_hi, height - 30.0, 30};
  std::string out = Open(title, width, height) + Axes(xs, ys, "", "weight", /*x_ticks=*/false);
  const double step = (xs.b - xs.a) / std::max<size_t>(mins.size(), 1);
  for (size_t i = 0; i < mins.size(); ++i) {
    absl::StrAppendFormat(&out, "<rect class=\"bar\" x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#1f77b4\"/>",
                          xs.a + step * i, ys(maxs[i]), std::max(step * 0.7, 0.5),
                          std::max(ys(mins[i]) - ys(maxs[i]), 0.5));
  }
  for (double v : {lo, hi}) {
    absl::StrAppendFormat(&out, "<line class=\"range\" x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" "
                          "stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>",
                          xs.a, ys(v), xs.b, ys(v));
  }
  return out + "</svg>";
}

}  // namespace qforge::svg
