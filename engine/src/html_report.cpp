#include <troupe/engine/html_report.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::engine {
namespace {

// Chart geometry in SVG user units; the plot box sits inside the margins.
constexpr double kWidth = 720, kHeight = 360;
constexpr double kLeft = 72, kRight = 24, kTop = 56, kBottom = 52;
constexpr int kTargetTicks = 5;

// Matplotlib's "tab10": distinct, and readable by most colour-blind viewers.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", v);
  return text;
}

std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0" or "1e-17" from accumulated steps
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

/// A span a little wider than [lo, hi] that starts and ends on a tick, and the tick
/// step: 1, 2 or 5 times a power of ten, so labels read as round numbers.
struct Axis {
  double lo, hi, step;
  double to_unit(double v) const { return (v - lo) / (hi - lo); }
};

Axis nice_axis(double lo, double hi) {
  if (hi - lo <= 0) {
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double rough = (hi - lo) / kTargetTicks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= rough) break;
  }
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step, step};
}

bool finite_point(const std::pair<double, double>& p) { return std::isfinite(p.first) && std::isfinite(p.second); }

/// Legend entries laid out left to right, wrapping to a new row when the chart's
/// width runs out; returns the SVG and the height it takes.
std::pair<std::string, double> legend(const std::vector<Series>& series, double top) {
  std::string svg;
  double x = kLeft, y = top;
  for (size_t i = 0; i < series.size(); ++i) {
    const double width = 28 + 7.0 * static_cast<double>(series[i].name.size()) + 16;
    if (x > kLeft && x + width > kWidth - kRight) {
      x = kLeft;
      y += 16;
    }
    const char* colour = kPalette[i % std::size(kPalette)];
    svg += "<line x1=\"" + number(x) + "\" y1=\"" + number(y - 4) + "\" x2=\"" + number(x + 20) + "\" y2=\"" +
           number(y - 4) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"/>";
    svg += "<text x=\"" + number(x + 26) + "\" y=\"" + number(y) + "\">" + html_escape(series[i].name) + "</text>";
    x += width;
  }
  return {svg, series.empty() ? 0.0 : y - top + 16};
}

void append_table_row(std::string& html, const std::vector<std::string>& cells, const char* tag) {
  html += "<tr>";
  for (const auto& cell : cells) html += std::string("<") + tag + ">" + html_escape(cell) + "</" + tag + ">";
  html += "</tr>\n";
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string chart_svg(const Chart& chart) {
  auto [legend_svg, legend_height] = legend(chart.series, 42);
  const double height = kHeight + legend_height;
  const double top = kTop + legend_height, bottom = height - kBottom;
  const double left = kLeft, right = kWidth - kRight;

  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const auto& s : chart.series)
    for (const auto& p : s.points)
      if (finite_point(p)) {
        x_lo = std::min(x_lo, p.first), x_hi = std::max(x_hi, p.first);
        y_lo = std::min(y_lo, p.second), y_hi = std::max(y_hi, p.second);
      }

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" + number(kWidth) +
                    "\" height=\"" + number(height) + "\" viewBox=\"0 0 " + number(kWidth) + " " + number(height) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<text x=\"" + number(kWidth / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" +
         html_escape(chart.title) + "</text>\n";
  svg += legend_svg + "\n";
  svg += "<rect x=\"" + number(left) + "\" y=\"" + number(top) + "\" width=\"" + number(right - left) + "\" height=\"" +
         number(bottom - top) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  svg += "<text x=\"" + number((left + right) / 2) + "\" y=\"" + number(height - 12) + "\" text-anchor=\"middle\">" +
         html_escape(chart.x_label) + "</text>\n";
  svg += "<text transform=\"translate(16 " + number((top + bottom) / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         html_escape(chart.y_label) + "</text>\n";

  if (!std::isfinite(x_lo)) {
    svg += "<text x=\"" + number((left + right) / 2) + "\" y=\"" + number((top + bottom) / 2) +
           "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</svg>";
    return svg;
  }

  const Axis x_axis = nice_axis(x_lo, x_hi), y_axis = nice_axis(y_lo, y_hi);
  auto px = [&](double x) { return left + x_axis.to_unit(x) * (right - left); };
  auto py = [&](double y) { return bottom - y_axis.to_unit(y) * (bottom - top); };

  // Ticks are counted, not accumulated, so float error cannot add or drop the last one.
  const auto x_ticks = static_cast<int>(std::lround((x_axis.hi - x_axis.lo) / x_axis.step));
  for (int i = 0; i <= x_ticks; ++i) {
    const double v = x_axis.lo + i * x_axis.step;
    svg += "<line x1=\"" + number(px(v)) + "\" y1=\"" + number(bottom) + "\" x2=\"" + number(px(v)) + "\" y2=\"" +
           number(bottom + 5) + "\" stroke=\"#444\"/>";
    svg += "<text x=\"" + number(px(v)) + "\" y=\"" + number(bottom + 18) + "\" text-anchor=\"middle\">" +
           tick_label(v, x_axis.step) + "</text>\n";
  }
  const auto y_ticks = static_cast<int>(std::lround((y_axis.hi - y_axis.lo) / y_axis.step));
  for (int i = 0; i <= y_ticks; ++i) {
    const double v = y_axis.lo + i * y_axis.step;
    svg += "<line x1=\"" + number(left) + "\" y1=\"" + number(py(v)) + "\" x2=\"" + number(right) + "\" y2=\"" +
           number(py(v)) + "\" stroke=\"#e5e5e5\"/>";
    svg += "<text x=\"" + number(left - 6) + "\" y=\"" + number(py(v) + 4) + "\" text-anchor=\"end\">" +
           tick_label(v, y_axis.step) + "</text>\n";
  }

  // A non-finite point breaks the line, so a diverged stretch shows as a gap.
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const std::string colour = kPalette[i % std::size(kPalette)];
    const auto& series = chart.series[i];
    std::vector<std::pair<double, double>> segment;
    auto draw = [&] {
      if (segment.size() == 1) {  // a lone point draws no line; mark it
        svg += "<circle cx=\"" + number(segment[0].first) + "\" cy=\"" + number(segment[0].second) + "\" r=\"3\" fill=\"" +
               colour + "\"/>\n";
      } else if (segment.size() > 1) {
        svg += "<polyline fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.5\" points=\"";
        for (size_t k = 0; k < segment.size(); ++k)
          svg += (k ? " " : "") + number(segment[k].first) + "," + number(segment[k].second);
        svg += "\"><title>" + html_escape(series.name) + "</title></polyline>\n";
      }
      segment.clear();
    };
    for (const auto& p : series.points) {
      if (finite_point(p)) {
        segment.emplace_back(px(p.first), py(p.second));
      } else {
        draw();
      }
    }
    draw();
  }
  svg += "</svg>";
  return svg;
}

void write_html_report(const std::filesystem::path& path, const HtmlReport& report) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                     html_escape(report.title) + "</title>\n";
  html +=
      "<style>\n"
      "body { font-family: sans-serif; margin: 2em; color: #222; }\n"
      "table { border-collapse: collapse; margin: 1em 0; }\n"
      "th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }\n"
      "th { background: #f3f3f3; }\n"
      "svg.chart { display: block; margin: 1.5em 0; }\n"
      "</style>\n</head>\n<body>\n";
  html += "<h1>" + html_escape(report.title) + "</h1>\n";
  if (!report.summary_rows.empty()) {
    html += "<table class=\"summary\">\n";
    for (const auto& [name, value] : report.summary_rows) append_table_row(html, {name, value}, "td");
    html += "</table>\n";
  }
  if (!report.table_header.empty() || !report.table_rows.empty()) {
    html += "<table class=\"results\">\n";
    if (!report.table_header.empty()) append_table_row(html, report.table_header, "th");
    for (const auto& row : report.table_rows) append_table_row(html, row, "td");
    html += "</table>\n";
  }
  for (const auto& chart : report.charts) html += chart_svg(chart) + "\n";
  html += "</body>\n</html>\n";
  write_file_atomically(path, html);
}

Chart chart_from_metrics(const std::vector<nlohmann::json>& rows, const std::string& phase,
                         const std::vector<std::string>& names, std::string title) {
  Chart chart;
  chart.title = std::move(title);
  chart.x_label = "step";
  if (names.size() == 1) chart.y_label = names[0];
  for (const auto& name : names) chart.series.push_back({name, {}});
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const auto row_phase = row.find("phase");
    if (row_phase == row.end() || !row_phase->is_string() || row_phase->get<std::string>() != phase) continue;
    const auto step = row.find("step");
    if (step == row.end() || !step->is_number())
      throw Error("metrics row " + std::to_string(r + 1) + ": field 'step' is missing or not a number");
    for (size_t i = 0; i < names.size(); ++i) {
      const auto value = row.find(names[i]);
      if (value == row.end()) continue;  // not every metric is logged on every step
      if (value->is_null()) {
        chart.series[i].points.emplace_back(step->get<double>(), std::numeric_limits<double>::quiet_NaN());
      } else if (value->is_number()) {
        chart.series[i].points.emplace_back(step->get<double>(), value->get<double>());
      } else {
        throw Error("metrics row " + std::to_string(r + 1) + ": field '" + names[i] + "' is not a number or null");
      }
    }
  }
  return chart;
}

}  // namespace troupe::engine
