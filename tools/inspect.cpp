// pali3 inspect FILE: tensors, dtypes, shapes and sizes, the naming and config found, and how the
// checkpoint fits the model (missing / wrong shape / unexpected; exit 2 when it does not fit).
#include <map>
#include <optional>

#include <pali3/pipeline/convert.hpp>

#include "common.hpp"

namespace pali3::cli {

void add_inspect(CLI::App& app) {
    struct args {
        pipeline::config_request config;
        std::string file;
        bool quiet = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("inspect", "a checkpoint's tensors and config, and how it fits the model (exit 2: it does not)");
    c->add_option("file", a->file, "checkpoint (safetensors, shards, .npz)");
    add_nonfinite_flag(c);
    add_config_flags(c, a->config);
    c->add_flag("--quiet", a->quiet, "no per-tensor table");
    c->callback([a] {
        if (a->file.empty() && a->config.preset.empty())
            throw value_error(core::describe("nothing to inspect", "pali3 inspect", "a checkpoint path or --preset NAME", "neither"));
        std::optional<weights::checkpoint> ckpt;
        if (!a->file.empty()) ckpt = weights::checkpoint::open(a->file);
        const auto cfg = pipeline::find_config(a->config, ckpt ? &*ckpt : nullptr);
        if (ckpt) {
            const auto list = ckpt->list();
            std::size_t total = 0;
            std::map<std::string, std::size_t> per_dtype;
            if (!a->quiet) std::printf("%-72s %-6s %-22s %s\n", "tensor", "dtype", "shape", "bytes");
            for (const auto& t : list) {
                total += t.bytes;
                per_dtype[t.dtype] += t.bytes;
                if (!a->quiet) std::printf("%-72s %-6s %-22s %zu\n", t.name.c_str(), t.dtype.c_str(), shape_string(t.shape).c_str(), t.bytes);
            }
            std::printf("\nfile: %s (%s)\ntensors: %zu, %s", ckpt->path().c_str(), ckpt->format().c_str(), list.size(),
                        pipeline::human_bytes(static_cast<double>(total)).c_str());
            for (const auto& [d, b] : per_dtype) std::printf(", %s %s", d.c_str(), pipeline::human_bytes(static_cast<double>(b)).c_str());
            std::printf("\nnaming: %s\n", std::string(weights::naming_name(weights::detect_naming(ckpt->names()))).c_str());
            for (const auto& [k, v] : ckpt->metadata()) std::printf("metadata %s = %s\n", k.c_str(), v.c_str());
        }
        if (!cfg) {
            std::printf("config: none found (no pali3.config metadata, no config.json beside the file; pass --preset or --config)\n");
            return;
        }
        const auto expected = pipeline::expected_parameters(cfg->config);
        std::size_t count = 0;
        std::map<std::string, std::size_t> per_part;
        for (const auto& p : expected) {
            count += shape_size(p.shape);
            per_part[p.name.substr(0, p.name.find('.'))] += shape_size(p.shape);
        }
        std::printf("config (%s): %s\n", cfg->source.c_str(), models::config_to_string(cfg->config).c_str());
        std::printf("model parameters: %zu in %zu tensors", count, expected.size());
        if (cfg->config.kind == models::model_kind::pali3)
            for (const auto& [part, n] : per_part) std::printf("; %s %zu", part.c_str(), n);
        std::printf("\n");
        if (!ckpt) return;
        const auto r = pipeline::check_checkpoint(cfg->config, *ckpt);
        std::printf("missing from the checkpoint: %zu\n", r.missing.size());
        for (const auto& m : r.missing) std::printf("  - %s\n", m.c_str());
        std::printf("present with a wrong shape or dtype: %zu\n", r.wrong.size());
        for (const auto& m : r.wrong) std::printf("  ! %s\n", m.c_str());
        std::printf("unexpected (in the file, not used by the model): %zu\n", r.unexpected.size());
        for (const auto& m : r.unexpected) std::printf("  + %s\n", m.c_str());
        std::printf("tied copies (in the file, equal to a tensor the model uses): %zu\n", r.tied.size());
        for (const auto& m : r.tied) std::printf("  = %s\n", m.c_str());
        if (!r.ok()) throw CLI::RuntimeError(2);  // the checkpoint does not fit: exit 2
    });
}

}  // namespace pali3::cli
