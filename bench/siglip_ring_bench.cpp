// Time per step of the ring SigLIP loss (loss + all gradients): a global batch split over the MPI
// ranks. usage: mpirun -np W pali3_siglip_ring_bench [global_batch=4096] [width=1152] [reps=3]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "pali3/loss/siglip_ring.hpp"

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 4096, d = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1152;
    const int reps = argc > 3 ? std::atoi(argv[3]) : 3;
    const std::size_t nl = n / static_cast<std::size_t>(world) + (static_cast<std::size_t>(rank) < n % static_cast<std::size_t>(world) ? 1 : 0);
    std::mt19937 gen(static_cast<unsigned>(rank) + 1);
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> img(nl * d), txt(nl * d), gi(nl * d), gt(nl * d);
    for (auto& x : img) x = dist(gen);
    for (auto& x : txt) x = dist(gen);
    std::vector<double> times;
    double loss = 0;
    for (int r = 0; r < reps; ++r) {
        MPI_Barrier(MPI_COMM_WORLD);
        const auto t0 = std::chrono::steady_clock::now();
        loss = pali3::loss::siglip_loss_ring(MPI_COMM_WORLD, img.data(), txt.data(), nl, d, 2.3f, -10.f, {gi.data(), gt.data()}).loss;
        MPI_Barrier(MPI_COMM_WORLD);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    // FLOPs: 3 GEMMs of (n x n x d) over the whole batch, split across ranks.
    const double flops = 3.0 * 2.0 * double(n) * double(n) * double(d);
    if (rank == 0)
        std::printf("ring SigLIP loss+grads, global batch %zu x %zu on %d rank(s): median %.3f s per step (best %.3f), %.1f GFLOP/s total, loss %.4f\n",
                    n, d, world, times[times.size() / 2], times.front(), flops / times[times.size() / 2] / 1e9, loss);
    MPI_Finalize();
    return 0;
}
