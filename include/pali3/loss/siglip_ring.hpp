// The SigLIP loss across processes (SigLIP paper §3.3, "chunked" implementation) on MPI.
//
// Each rank holds its own pairs (img_r, txt_r), n_r rows each (ranks may differ in n_r; 0 is allowed). The
// normalised text block of every rank travels round the ring of ranks together with the gradient
// accumulated for it; at each of the W steps a rank adds the terms of (its images) x (the visiting
// text block) — the positives only when the block is its own — so no rank ever holds more than two
// text blocks, and memory is O(n_r * d + block^2) per rank, never O((sum n_r)^2). After W - 1 shifts
// and one last shift of the gradient back to its owner, every rank has the gradients of its own
// embeddings; loss, dL/dt' and dL/db are summed over ranks. The result equals the single-process
// `siglip_loss` on the concatenated batch (normalised by the global batch size) up to f32 rounding.
//
// Needs MPI (optional dependency: include this header only in code built against MPI; the rest of
// pali3 does not need it). The caller owns MPI_Init/Finalize and the communicator.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <string>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/loss/siglip_loss.hpp"

namespace pali3::loss {

namespace detail {
inline void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        throw error(core::describe("MPI call failed", what, "MPI_SUCCESS", std::string(msg, static_cast<std::size_t>(len))));
    }
}
}  // namespace detail

// img, txt: this rank's (n_local, d) embeddings; grads (optional) are for those rows only.
template <core::executor E = core::sequential>
siglip_result siglip_loss_ring(MPI_Comm comm, const float* img, const float* txt, std::size_t n_local, std::size_t d, float log_t,
                               float bias, const siglip_grads& grads = {}, std::size_t block = 0, float eps = 1e-8f, E&& exec = E{}) {
    using detail::check;
    int rank = 0, world = 1;
    check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
    check(MPI_Comm_size(comm, &world), "MPI_Comm_size");
    // Every rank's row count, and the same width everywhere.
    const unsigned long long mine[2] = {n_local, d};
    std::vector<unsigned long long> all(2 * static_cast<std::size_t>(world));
    check(MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all.data(), 2, MPI_UNSIGNED_LONG_LONG, comm), "MPI_Allgather");
    std::size_t n_total = 0, n_max = 0;
    for (int r = 0; r < world; ++r) {
        const auto nr = static_cast<std::size_t>(all[2 * static_cast<std::size_t>(r)]);
        if (all[2 * static_cast<std::size_t>(r) + 1] != d)
            throw shape_error(core::describe("embedding width differs between ranks", "siglip_loss_ring rank " + std::to_string(r),
                                             d, all[2 * static_cast<std::size_t>(r) + 1]));
        n_total += nr;
        n_max = std::max(n_max, nr);
    }
    detail::check_inputs(n_total, d, log_t, bias, "siglip_loss_ring");
    if (n_max * d > static_cast<std::size_t>(INT32_MAX) / 2)
        throw shape_error(core::describe("text block too large for one MPI message", "siglip_loss_ring", "< 2^30 floats", n_max * d));

    const double t = std::exp(static_cast<double>(log_t));
    const bool want_grads = grads.d_img || grads.d_txt || grads.d_img_unit || grads.d_txt_unit;
    std::vector<float> u(n_local * d), v_own(n_local * d), ru(n_local), rv(n_local);
    detail::normalise_rows(img, n_local, d, eps, u.data(), ru.data());
    detail::normalise_rows(txt, n_local, d, eps, v_own.data(), rv.data());
    std::vector<float> du(want_grads ? n_local * d : 0, 0.f);
    // The visiting block: [v (n_max*d) | dv (n_max*d)] so one message carries both.
    std::vector<float> cur(2 * n_max * d, 0.f), next(2 * n_max * d, 0.f);
    std::copy(v_own.begin(), v_own.end(), cur.begin());
    const int right = (rank + 1) % world, left = (rank + world - 1) % world;
    siglip_result local;
    const double inv_n = 1.0 / static_cast<double>(n_total);
    for (int step = 0; step < world; ++step) {
        const int owner = (rank - step + world) % world;
        const auto nj = static_cast<std::size_t>(all[2 * static_cast<std::size_t>(owner)]);
        detail::add_pairs(u.data(), n_local, cur.data(), nj, d, t, bias, owner == rank ? 0L : -1L, inv_n, block, local,
                          want_grads ? du.data() : nullptr, want_grads ? cur.data() + n_max * d : nullptr, exec);
        if (world == 1) break;
        // Pass the block (values and accumulated gradient) to the right; receive from the left.
        // After the last step only the gradient moves: it goes home to its owner.
        const bool last = step + 1 == world;
        const int send_off = last ? static_cast<int>(n_max * d) : 0;
        const int count = static_cast<int>(last ? n_max * d : 2 * n_max * d);
        check(MPI_Sendrecv(cur.data() + send_off, count, MPI_FLOAT, right, 17, next.data() + send_off, count, MPI_FLOAT, left, 17, comm,
                           MPI_STATUS_IGNORE),
              "MPI_Sendrecv");
        std::swap(cur, next);
    }
    double sums[3] = {local.loss, local.d_log_t, local.d_bias}, total[3] = {0, 0, 0};
    check(MPI_Allreduce(sums, total, 3, MPI_DOUBLE, MPI_SUM, comm), "MPI_Allreduce");
    siglip_result res{total[0], total[1], total[2]};
    if (!want_grads) return res;
    const float* dv = cur.data() + n_max * d;  // our own block's gradient, back home
    if (grads.d_img_unit) std::copy(du.begin(), du.end(), grads.d_img_unit);
    if (grads.d_txt_unit) std::copy(dv, dv + n_local * d, grads.d_txt_unit);
    if (grads.d_img) detail::through_norm(img, ru.data(), du.data(), n_local, d, eps, grads.d_img);
    if (grads.d_txt) detail::through_norm(txt, rv.data(), dv, n_local, d, eps, grads.d_txt);
    return res;
}

}  // namespace pali3::loss
