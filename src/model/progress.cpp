// Progress bar formatting, modelled on Keras 3's Progbar.
#include "model/progress.h"

#ifdef _WIN32
#include <io.h>
#else
#include <unistd.h>
#endif

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace kiln::model {

namespace {

constexpr int kBarWidth = 20;
constexpr double kRedrawSeconds = 0.05;  // Keras' Progbar interval

std::string format_duration(double seconds) {
  std::ostringstream os;
  if (seconds >= 3600)
    os << static_cast<int>(seconds / 3600) << ':' << std::setfill('0') << std::setw(2)
       << static_cast<int>(std::fmod(seconds, 3600) / 60) << ':' << std::setw(2)
       << static_cast<int>(std::fmod(seconds, 60));
  else if (seconds >= 60)
    os << static_cast<int>(seconds / 60) << ':' << std::setfill('0') << std::setw(2)
       << static_cast<int>(std::fmod(seconds, 60));
  else
    os << static_cast<int>(std::round(seconds)) << 's';
  return os.str();
}

std::string format_per_step(double seconds) {
  std::ostringstream os;
  if (seconds >= 1)
    os << static_cast<int>(std::round(seconds)) << "s/step";
  else if (seconds >= 1e-3)
    os << static_cast<int>(std::round(seconds * 1e3)) << "ms/step";
  else
    os << static_cast<int>(std::round(seconds * 1e6)) << "us/step";
  return os.str();
}

std::string format_value(double v) {
  std::ostringstream os;
  if (v != 0 && (std::fabs(v) < 1e-3 || std::fabs(v) >= 1e4))
    os << std::scientific << std::setprecision(4) << v;
  else
    os << std::fixed << std::setprecision(4) << v;
  return os.str();
}

}  // namespace

bool stdout_is_terminal() {
#ifdef _WIN32
  return _isatty(_fileno(stdout)) != 0;
#else
  return isatty(fileno(stdout)) != 0;
#endif
}

std::string epoch_header(int epoch, int epochs) {
  return "Epoch " + std::to_string(epoch) + "/" + std::to_string(epochs);
}

ProgressBar::ProgressBar(std::ostream& os, int64_t total_steps, int verbose, bool is_terminal)
    : os_(os),
      total_(total_steps),
      verbose_(verbose),
      terminal_(is_terminal),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

bool ProgressBar::wants_update(int64_t step) const {
  if (verbose_ != 1 || !terminal_) return false;
  if (step >= total_) return false;  // the final line comes from finish()
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - last_draw_).count() >= kRedrawSeconds;
}

void ProgressBar::update(int64_t step, const Values& values) {
  last_draw_ = std::chrono::steady_clock::now();
  draw(step, values, false);
}

void ProgressBar::finish(const Values& values) {
  if (verbose_ == 0) return;
  draw(total_, values, true);
}

void ProgressBar::draw(int64_t step, const Values& values, bool final) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double per_step = step > 0 ? elapsed / static_cast<double>(step) : 0.0;
  std::ostringstream line;
  const std::string total = std::to_string(total_);
  const std::string done = std::to_string(step);
  line << std::string(total.size() > done.size() ? total.size() - done.size() : 0, ' ') << done << '/' << total << ' ';
  const int filled = total_ > 0 ? static_cast<int>(kBarWidth * step / total_) : kBarWidth;
  for (int i = 0; i < kBarWidth; ++i) line << (i < filled ? "\u2501" : (terminal_ ? "\u2500" : " "));
  // While running, Keras shows the time left; at the end, the time taken.
  line << ' ' << format_duration(final ? elapsed : per_step * static_cast<double>(total_ - step)) << ' '
       << format_per_step(per_step);
  for (const auto& [name, v] : values) line << " - " << name << ": " << format_value(v);
  if (terminal_)
    os_ << "\r\x1b[K" << line.str();
  else
    os_ << line.str();
  if (final) os_ << '\n';
  os_ << std::flush;
}

}  // namespace kiln::model
