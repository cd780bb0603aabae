// The `pali3` command line. `pali3 help` lists the subcommands.
#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"

using namespace pali3;

namespace {

// Expected parameters (name, shape) of the model a config describes (no weights are touched).
std::vector<layers::param_info> expected_parameters(const models::any_config& c) {
    using namespace models;
    switch (c.kind) {
        case model_kind::vit: {
            vision_tower<bf16> m(c.vision);
            return layers::parameters(m);
        }
        case model_kind::t5: {
            if (c.gated_ffn) {
                t5_v11<bf16> m(c.text);
                return layers::parameters(m);
            }
            t5_v10<bf16> m(c.text);
            return layers::parameters(m);
        }
        case model_kind::pali3: {
            pali3_model<bf16> m(c.pali);
            return layers::parameters(m);
        }
        case model_kind::siglip_text: {
            text_tower<bf16> m(c.siglip_text);
            return layers::parameters(m);
        }
        case model_kind::siglip: {
            siglip_model<bf16> m({c.vision, c.siglip_text});
            return layers::parameters(m);
        }
    }
    return {};
}

int inspect(int argc, char** argv) {
    cli::args a(argc, argv, 2, {"quiet"});
    const bool quiet = a.has("quiet") && a.get("quiet") == "1";
    if (a.positional().empty() && !a.has("preset"))
        throw value_error(core::describe("nothing to inspect", "pali3 inspect", "a checkpoint path or --preset NAME", "neither"));
    std::optional<weights::checkpoint> ckpt;
    if (!a.positional().empty()) ckpt = weights::checkpoint::open(a.positional()[0]);
    const auto cfg = cli::find_config(a, ckpt ? &*ckpt : nullptr);
    a.check_all_used();

    weights::naming naming = weights::naming::unknown;
    if (ckpt) {
        const auto list = ckpt->list();
        std::size_t total = 0;
        std::map<std::string, std::size_t> per_dtype;
        if (!quiet) std::printf("%-72s %-6s %-22s %s\n", "tensor", "dtype", "shape", "bytes");
        for (const auto& t : list) {
            total += t.bytes;
            per_dtype[t.dtype] += t.bytes;
            if (!quiet) std::printf("%-72s %-6s %-22s %zu\n", t.name.c_str(), t.dtype.c_str(), shape_string(t.shape).c_str(), t.bytes);
        }
        naming = weights::detect_naming(ckpt->names());
        std::printf("\nfile: %s (%s)\ntensors: %zu, %s", ckpt->path().c_str(), ckpt->format().c_str(), list.size(),
                    cli::human_bytes(static_cast<double>(total)).c_str());
        for (const auto& [d, b] : per_dtype) std::printf(", %s %s", d.c_str(), cli::human_bytes(static_cast<double>(b)).c_str());
        std::printf("\nnaming: %s\n", std::string(weights::naming_name(naming)).c_str());
        for (const auto& [k, v] : ckpt->metadata()) std::printf("metadata %s = %s\n", k.c_str(), v.c_str());
    }
    if (!cfg) {
        std::printf("config: none found (no pali3.config metadata, no config.json beside the file; pass --preset or --config)\n");
        return 0;
    }
    const auto expected = expected_parameters(cfg->config);
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
    if (!ckpt) return 0;

    const weights::mapped_source mapped(*ckpt, weights::rules_for(naming, cli::kind_name(cfg->config.kind)));
    std::vector<std::string> missing, wrong;
    std::set<std::string> used;
    for (const auto& p : expected) {
        const auto theirs = mapped.translate(p.name);
        if (!theirs) {
            missing.push_back(p.name + " " + shape_string(p.shape));
            continue;
        }
        used.insert(theirs->substr(0, theirs->back() == ']' ? theirs->rfind('[') : theirs->size()));
        try {
            (void)mapped.get(p.name, p.shape);
        } catch (const error& e) {
            wrong.push_back(e.what());
        }
    }
    std::vector<std::string> unexpected;
    for (const auto& n : ckpt->names())
        if (!used.count(n)) unexpected.push_back(n);
    std::printf("missing from the checkpoint: %zu\n", missing.size());
    for (const auto& m : missing) std::printf("  - %s\n", m.c_str());
    std::printf("present with a wrong shape or dtype: %zu\n", wrong.size());
    for (const auto& m : wrong) std::printf("  ! %s\n", m.c_str());
    std::printf("unexpected (in the file, not used by the model): %zu\n", unexpected.size());
    for (const auto& m : unexpected) std::printf("  + %s\n", m.c_str());
    return missing.empty() && wrong.empty() ? 0 : 2;
}

void usage() {
    std::printf(
        "pali3 — PaLI-3 family models on CPUs\n\n"
        "usage: pali3 COMMAND [ARGS] [--flags]\n\n"
        "  inspect FILE [--preset P | --config JSON] [--quiet]\n"
        "      tensors, dtypes, shapes, total size, the config found, missing/unexpected tensors\n"
        "  make-demo DIR [--seed N]\n"
        "      write a tiny PaLI-3 (random weights, safetensors), a sentencepiece model and a sample image\n"
        "  caption IMAGE --weights W --tokenizer T [--lang en]\n"
        "  vqa IMAGE QUESTION --weights W --tokenizer T\n"
        "  detect IMAGE THING --weights W --tokenizer T [--out overlay.png]\n"
        "  segment IMAGE THING --weights W --tokenizer T [--vqvae V] [--out overlay.png]\n"
        "  generate IMAGE PROMPT --weights W --tokenizer T   (any prompt, raw tokens shown)\n"
        "  embed IMAGE --weights W [--texts \"a cat|a dog\" --tokenizer T]   (SigLIP; zero-shot scores with a pair)\n"
        "  dump (IMAGE | --pixels X.npy | --encoder-ids 1,2,3 --decoder-ids 0,5) --weights W --out DIR\n"
        "  bench --preset P | --weights W   (per-stage timings, random weights when none)\n"
        "  init OUT.safetensors --preset P [--seed N] [--naming pali3|hf]   (seeded random weights)\n"
        "  convert IN OUT.safetensors [--naming pali3|hf] [--dtype f32|bf16]   (any naming in, ours or HF out)\n\n"
        "common flags: --threads N, --dtype f32|bf16, --prepack (weights also kept in the GEMM's packed layout: 2x memory),\n"
        "              --max-new-tokens N, --beam N, --length-penalty A,\n"
        "              --resolution R, --preset P, --config config.json\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "help" || std::string(argv[1]) == "--help") {
        usage();
        return argc < 2 ? 1 : 0;
    }
    const std::string cmd = argv[1];
    try {
        if (cmd == "inspect") return inspect(argc, argv);
        if (const auto fn = cli::find_command(cmd)) return fn(argc, argv);
        std::fprintf(stderr, "pali3: unknown command '%s' (see pali3 help)\n", cmd.c_str());
        return 1;
    } catch (const pali3::error& e) {
        std::fprintf(stderr, "pali3 %s: error: %s\n", cmd.c_str(), e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pali3 %s: unexpected error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
}
