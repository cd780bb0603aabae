// Data-parallel training across processes on MPI: every rank holds the whole model and its own
// share of the global batch; gradients are summed across ranks before each optimiser step, so
// every rank applies the same update and the weights stay identical (docs/training.md).
//   - token cross-entropy (T5, PaLI-3): each rank divides its summed loss by the *global* number
//     of counted targets (global_count), so the summed gradients are those of the global mean;
//   - SigLIP: the loss couples every image with every text of the global batch; siglip_step runs
//     the towers locally and the loss on the ring of ranks (loss/siglip_ring.hpp).
// Needs MPI: include this header only in code built against MPI (like siglip_ring.hpp). The
// caller owns MPI_Init/Finalize and the communicator.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "pali3/core/workspace.hpp"
#include "pali3/loss/siglip_ring.hpp"
#include "pali3/train/parameters.hpp"

namespace pali3::train {

// Sums every trainable tensor's gradient over the ranks of comm, in place (chunks of at most
// 2^24 floats per MPI call).
inline void allreduce_gradients(MPI_Comm comm, parameters& ps) {
    constexpr std::size_t chunk = std::size_t{1} << 24;
    for (auto& p : ps.list()) {
        if (!p.trainable) continue;
        for (std::size_t off = 0; off < p.grad.size(); off += chunk) {
            const int n = static_cast<int>(std::min(chunk, p.grad.size() - off));
            loss::detail::check(MPI_Allreduce(MPI_IN_PLACE, p.grad.data() + off, n, MPI_FLOAT, MPI_SUM, comm), "MPI_Allreduce");
        }
    }
}

// Rank root's weights on every rank (call once after building the model, before training).
inline void broadcast_parameters(MPI_Comm comm, parameters& ps, int root = 0) {
    constexpr std::size_t chunk = std::size_t{1} << 24;
    for (auto& p : ps.list())
        for (std::size_t off = 0; off < p.size(); off += chunk) {
            const int n = static_cast<int>(std::min(chunk, p.size() - off));
            loss::detail::check(MPI_Bcast(p.value + off, n, MPI_FLOAT, root, comm), "MPI_Bcast");
        }
}

// The sum of `local` over the ranks (counted targets, examples).
inline std::size_t global_count(MPI_Comm comm, std::size_t local) {
    unsigned long long in = local, out = 0;
    loss::detail::check(MPI_Allreduce(&in, &out, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm), "MPI_Allreduce");
    return static_cast<std::size_t>(out);
}

inline double global_sum(MPI_Comm comm, double local) {
    double out = 0;
    loss::detail::check(MPI_Allreduce(&local, &out, 1, MPI_DOUBLE, MPI_SUM, comm), "MPI_Allreduce");
    return out;
}

// Number of targets a rank's share counts (targets != ignore).
inline std::size_t counted_targets(const std::int32_t* targets, std::size_t n, std::int32_t ignore = -100) {
    return static_cast<std::size_t>(std::count_if(targets, targets + n, [ignore](std::int32_t t) { return t != ignore; }));
}

// One SigLIP forward + backward of this rank's n_local pairs against the global batch: both towers
// locally, the sigmoid loss over every (image, text) pair of every rank on the ring, backward
// locally. Adds this rank's gradients to ps (allreduce_gradients then sums them); returns the
// global loss (the same on every rank).
template <class Model, core::executor E = core::sequential>
double siglip_step(MPI_Comm comm, const Model& model, const float* images, const std::int32_t* ids, std::size_t n_local,
                   parameters& ps, E&& exec = E{}, bool recompute = false) {
    core::buffer img, txt, tokens;
    typename Model::vision_type::saved vs;
    typename Model::vision_type::head_type::saved hs;
    typename Model::text_type::saved ts;
    model.template embed_train<typename Model::vision_type, typename Model::text_type>(images, ids, n_local, img, txt, tokens, vs,
                                                                                       hs, ts, exec, recompute);
    const std::size_t d = model.embed_dim();
    core::buffer d_img(n_local * d), d_txt(n_local * d);
    const auto res = loss::siglip_loss_ring(comm, img.data(), txt.data(), n_local, d, model.log_t(), model.bias(),
                                            loss::siglip_grads{d_img.data(), d_txt.data()}, 0, 1e-8f, exec);
    // d_log_t and d_bias are already summed over the ranks: each rank adds a 1/world share so that
    // allreduce_gradients makes the total once.
    int world = 1;
    loss::detail::check(MPI_Comm_size(comm, &world), "MPI_Comm_size");
    model.template backward_train<parameters, typename Model::vision_type, typename Model::text_type>(
        images, ids, n_local, tokens, vs, hs, ts, d_img.data(), d_txt.data(), res.d_log_t / world, res.d_bias / world, ps,
        exec);
    return res.loss;
}

}  // namespace pali3::train
