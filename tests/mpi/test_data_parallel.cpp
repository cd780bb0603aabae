// Data-parallel training on MPI: ranks share a global batch, sum their gradients, and step AdamW.
// After three steps every rank's weights equal those of one process training on the whole batch
// (T5 cross-entropy with ignored targets spread unevenly over the ranks; the SigLIP pair with the
// loss on the ring of ranks), within 1e-6 relative over all weights (1e-5 for any one tensor).
// Run with mpirun -np 1, 2, 4.
#include "pali3/train/data_parallel.hpp"  // first: the header compiles on its own

#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "pali3/models/siglip.hpp"
#include "pali3/models/t5.hpp"
#include "pali3/train/optimizer.hpp"
#include "pali3/weights/random_source.hpp"

using namespace pali3;

namespace {

int failures = 0;

std::vector<std::int32_t> ids(std::size_t n, std::size_t vocab, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::vector<std::int32_t> out(n);
    for (auto& v : out) v = static_cast<std::int32_t>(gen() % vocab);
    return out;
}

// ||w_dp - w_ref|| / ||w_ref|| over every weight, and the worst single tensor (a small bias
// whose gradient is a sum with cancellation can differ by a few 1e-6 after Adam's normalisation).
struct difference {
    double global = 0, worst = 0;
    std::string worst_name;
};

difference compare(const train::parameters& a, const train::parameters& b) {
    difference r;
    double num_all = 0, den_all = 0;
    for (std::size_t k = 0; k < a.size(); ++k) {
        double num = 0, den = 0;
        for (std::size_t i = 0; i < a.list()[k].size(); ++i) {
            const double d = static_cast<double>(a.list()[k].value[i]) - b.list()[k].value[i];
            num += d * d;
            den += static_cast<double>(b.list()[k].value[i]) * b.list()[k].value[i];
        }
        num_all += num;
        den_all += den;
        const double e = std::sqrt(num / std::max(den, 1e-30));
        if (e > r.worst) {
            r.worst = e;
            r.worst_name = a.list()[k].name;
        }
    }
    r.global = std::sqrt(num_all / std::max(den_all, 1e-30));
    return r;
}

void report(const char* what, const difference& d, int rank, int world) {
    if (!(d.global <= 1e-6) || !(d.worst <= 1e-5)) {
        std::fprintf(stderr, "rank %d of %d: %s: weights differ from one process by %.3g (> 1e-6), worst tensor %s %.3g (> 1e-5)\n",
                     rank, world, what, d.global, d.worst_name.c_str(), d.worst);
        ++failures;
    } else if (rank == 0) {
        std::printf("%s, %d ranks: 3 AdamW steps, weights differ from one process by %.2e relative (worst tensor %s: %.2e)\n",
                    what, world, d.global, d.worst_name.c_str(), d.worst);
    }
}

void t5_case(int rank, int world) {
    const models::t5_config c{61, 24, 40, 3, 8, 2, 2, 8, 20};
    const std::size_t batch = 4, enc = 6, dec = 5;
    const auto e = ids(batch * enc, c.vocab, 1), d = ids(batch * dec, c.vocab, 2);
    auto t = ids(batch * dec, c.vocab, 3);
    t[0] = t[1] = t[2] = t[7] = -100;  // uneven counts over the ranks
    const weights::random_source init(9);
    const train::adamw_config opt{1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f, 1.f};

    models::t5_v11<float> ref(c, weights::cursor(init, "t5"));
    train::parameters pr(ref);
    train::adamw or_(pr, opt);
    models::t5_v11<float> dp(c, weights::cursor(init, "t5"));
    train::parameters pd(dp);
    train::broadcast_parameters(MPI_COMM_WORLD, pd);
    train::adamw od(pd, opt);

    const std::size_t per = batch / static_cast<std::size_t>(world), b0 = per * static_cast<std::size_t>(rank);
    for (int step = 0; step < 3; ++step) {
        pr.zero_grad();
        ref.loss_and_grad(e.data(), batch, enc, {}, d.data(), dec, t.data(), &pr);
        or_.step();
        pd.zero_grad();
        models::t5_v11<float>::loss_options lo;
        lo.normaliser = train::global_count(MPI_COMM_WORLD, train::counted_targets(t.data() + b0 * dec, per * dec));
        dp.loss_and_grad(e.data() + b0 * enc, per, enc, {}, d.data() + b0 * dec, dec, t.data() + b0 * dec, &pd,
                         core::sequential{}, lo);
        train::allreduce_gradients(MPI_COMM_WORLD, pd);
        od.step();
    }
    report("T5 cross-entropy", compare(pd, pr), rank, world);
}

void siglip_case(int rank, int world) {
    const auto c = models::siglip_of(models::vit_config{16, 1, 28, 2, 5, 10}, 37, 6);
    const std::size_t n = 4;
    std::mt19937 gen(5);
    std::normal_distribution<float> nd;
    std::vector<float> img(n * 3 * 10 * 10);
    for (auto& v : img) v = nd(gen);
    const auto txt = ids(n * 6, 37, 6);
    const weights::random_source init(10);
    const train::adamw_config opt{2e-3f, 0.9f, 0.999f, 1e-8f, 0.f, 0.f};

    models::siglip_model<float> ref(c, weights::cursor(init, "s"));
    train::parameters pr(ref);
    train::adamw or_(pr, opt);
    models::siglip_model<float> dp(c, weights::cursor(init, "s"));
    train::parameters pd(dp);
    train::adamw od(pd, opt);
    const std::size_t per = n / static_cast<std::size_t>(world), b0 = per * static_cast<std::size_t>(rank);
    double loss_ref = 0, loss_dp = 0;
    for (int step = 0; step < 3; ++step) {
        pr.zero_grad();
        loss_ref = ref.loss_and_grad(img.data(), txt.data(), n, &pr);
        or_.step();
        pd.zero_grad();
        loss_dp = train::siglip_step(MPI_COMM_WORLD, dp, img.data() + b0 * 300, txt.data() + b0 * 6, per, pd);
        train::allreduce_gradients(MPI_COMM_WORLD, pd);
        od.step();
    }
    if (std::abs(loss_dp - loss_ref) > 1e-5 * std::abs(loss_ref)) {
        std::fprintf(stderr, "rank %d: SigLIP loss %.9g vs %.9g\n", rank, loss_dp, loss_ref);
        ++failures;
    }
    report("SigLIP pair (ring loss)", compare(pd, pr), rank, world);
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    try {
        if (4 % world != 0) {
            if (rank == 0) std::fprintf(stderr, "run with 1, 2 or 4 ranks\n");
            ++failures;
        } else {
            t5_case(rank, world);
            siglip_case(rank, world);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
        ++failures;
    }
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}
