// The ring (MPI) SigLIP loss equals the single-process loss on the concatenated batch: loss,
// dL/dt', dL/db, and every rank's gradients (raw and normalised embeddings), for equal and
// unequal local batches and tiled blocks. Run with mpirun -np 1, 2, 4 (CTest does).
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "pali3/loss/siglip_ring.hpp"

namespace {

int failures = 0;
void expect_close(double got, double want, double tol, const char* what, int rank) {
    const double err = std::abs(got - want) / std::max(1.0, std::abs(want));
    if (!(err <= tol)) {
        std::fprintf(stderr, "rank %d: %s: got %.9g, want %.9g (rel err %.3g > %.3g)\n", rank, what, got, want, err, tol);
        ++failures;
    }
}

void run_case(std::size_t base, std::size_t d, std::size_t block, bool unequal, int rank, int world) {
    // Rank r holds n_r rows; everyone builds the full batch from one seed and takes its slice.
    std::vector<std::size_t> counts(static_cast<std::size_t>(world)), offsets(static_cast<std::size_t>(world));
    std::size_t n = 0;
    for (int r = 0; r < world; ++r) {
        counts[static_cast<std::size_t>(r)] = base + (unequal ? static_cast<std::size_t>(r) * 3 : 0);
        offsets[static_cast<std::size_t>(r)] = n;
        n += counts[static_cast<std::size_t>(r)];
    }
    std::mt19937 gen(1234);
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> img(n * d), txt(n * d);
    for (auto& x : img) x = dist(gen);
    for (std::size_t i = 0; i < n * d; ++i) txt[i] = 0.6f * img[i] + 0.8f * dist(gen);  // correlated pairs
    const float log_t = std::log(10.f), bias = -10.f;

    std::vector<float> di(n * d), dt(n * d), diu(n * d), dtu(n * d);
    const auto ref = pali3::loss::siglip_loss(img.data(), txt.data(), n, d, log_t, bias, {di.data(), dt.data(), diu.data(), dtu.data()});

    const std::size_t nl = counts[static_cast<std::size_t>(rank)], off = offsets[static_cast<std::size_t>(rank)];
    std::vector<float> gi(nl * d), gt(nl * d), giu(nl * d), gtu(nl * d);
    const auto got = pali3::loss::siglip_loss_ring(MPI_COMM_WORLD, img.data() + off * d, txt.data() + off * d, nl, d, log_t, bias,
                                                   {gi.data(), gt.data(), giu.data(), gtu.data()}, block);
    expect_close(got.loss, ref.loss, 1e-5, "loss", rank);
    expect_close(got.d_log_t, ref.d_log_t, 1e-4, "dL/dt'", rank);
    expect_close(got.d_bias, ref.d_bias, 1e-4, "dL/db", rank);
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < nl * d; ++i) {
        const float pairs[4][2] = {{gi[i], di[off * d + i]}, {gt[i], dt[off * d + i]}, {giu[i], diu[off * d + i]}, {gtu[i], dtu[off * d + i]}};
        for (const auto& p : pairs) {
            worst = std::max(worst, static_cast<double>(std::abs(p[0] - p[1])));
            scale = std::max(scale, static_cast<double>(std::abs(p[1])));
        }
    }
    expect_close(worst / std::max(scale, 1e-30), 0.0, 1e-4, "gradients (max abs err / max abs)", rank);
    if (rank == 0)
        std::printf("n=%zu (%s over %d ranks) d=%zu block=%zu: loss %.6f vs %.6f, grad err %.2e of max\n", n, unequal ? "unequal" : "equal",
                    world, d, block, got.loss, ref.loss, worst / std::max(scale, 1e-30));
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    try {
        run_case(16, 37, 0, false, rank, world);
        run_case(13, 29, 5, true, rank, world);
        run_case(1, 8, 0, false, rank, world);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
        ++failures;
    }
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    if (rank == 0) std::printf("%s\n", total ? "FAILED" : "all ring checks passed");
    return total ? 1 : 0;
}
