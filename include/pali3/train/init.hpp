// Initialisers for training from scratch beyond the random source's.
//
// ordinal_rows: PaLI's 1024 <loc> tokens name positions on an axis, but a softmax over them
// treats bin 300 and bin 301 as unrelated classes, so with random rows a model learns each bin
// on its own and a box coordinate comes last of everything it learns (a tiny PaLI-3 on the
// shapes world gave no boxes after 5000 steps while captions and answers improved). Rows made
// from sinusoids of the bin index start nearby bins close together in the embedding table and
// in the output head: raising one bin's logit raises its neighbours', as for a regression.
// Row i = sum over periods P of sin(2 pi i / P) u_P + cos(2 pi i / P) v_P, with fixed random
// directions u_P, v_P (seeded) and periods from 4 x count down to 32 bins, each row then
// scaled to the table's mean row norm (so the rest of the table's scale is kept).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "pali3/core/error.hpp"

namespace pali3::train {

// Rewrites rows first_id .. first_id + count - 1 of a (rows, width) row-major table.
inline void ordinal_rows(float* table, std::size_t rows, std::size_t width, std::size_t first_id, std::size_t count,
                         std::uint64_t seed = 0) {
    if (first_id > rows || count > rows - first_id || width == 0 || count < 2)
        throw value_error(core::describe("ordinal rows out of the table", "ordinal_rows",
                                         "first_id + count <= rows = " + std::to_string(rows) + ", count >= 2, width > 0",
                                         std::to_string(first_id) + " + " + std::to_string(count) + ", width " +
                                             std::to_string(width)));
    double norm = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        double s = 0;
        for (std::size_t j = 0; j < width; ++j) s += static_cast<double>(table[r * width + j]) * table[r * width + j];
        norm += std::sqrt(s);
    }
    norm /= static_cast<double>(rows);
    if (!(norm > 0)) norm = 1;
    std::vector<double> periods;
    for (double p = 4.0 * static_cast<double>(count); p >= 32.0; p /= 2) periods.push_back(p);
    if (periods.empty()) periods.push_back(4.0 * static_cast<double>(count));
    std::mt19937_64 gen(seed ^ 0x6C6F63ull);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> dirs(2 * periods.size() * width);
    for (auto& d : dirs) d = normal(gen);
    std::vector<double> row(width);
    for (std::size_t i = 0; i < count; ++i) {
        std::fill(row.begin(), row.end(), 0.0);
        for (std::size_t k = 0; k < periods.size(); ++k) {
            const double a = 6.283185307179586 * static_cast<double>(i) / periods[k];
            const double s = std::sin(a), c = std::cos(a);
            const double* u = dirs.data() + 2 * k * width;
            const double* v = u + width;
            for (std::size_t j = 0; j < width; ++j) row[j] += s * u[j] + c * v[j];
        }
        double len = 0;
        for (const double x : row) len += x * x;
        const double scale = norm / std::sqrt(len);
        for (std::size_t j = 0; j < width; ++j) table[(first_id + i) * width + j] = static_cast<float>(row[j] * scale);
    }
}

}  // namespace pali3::train
