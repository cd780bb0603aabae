// libFuzzer target: the command line's flags. Each input is an argument list (NUL-separated) for a
// PaLI-3 pipeline command, parsed with the flags every such command shares (tools/common.hpp: config,
// dtype, threads, tokens, beam, length penalty, memory, ...). A parse either fails with a CLI11
// error (the message the user sees) or gives values inside their documented ranges; the config it
// names (--preset/--resolution; files are not opened here) is then built and its memory estimated,
// each step either succeeding or throwing pali3::error. Any other exception is a finding.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_flags fuzz/corpus/flags
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../tools/common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3;
    std::vector<std::string> args{"pali3", "caption"};
    std::string cur;
    for (std::size_t i = 0; i < size && args.size() < 40; ++i) {
        if (data[i] == 0) {
            args.push_back(cur);
            cur.clear();
        } else if (cur.size() < 200) {
            cur.push_back(static_cast<char>(data[i]));
        }
    }
    if (!cur.empty()) args.push_back(cur);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());

    // One app for many inputs (building it is most of a parse's cost); the values it binds are
    // reset to their defaults before each input, as a fresh process would have them. Rebuilt every
    // 4096 inputs: CLI11 2.3's App::clear() keeps each parse's option order (parse_order_), ~40
    // bytes a parse, which over millions of inputs reached the fuzzer's 2 GB limit.
    struct parser {
        CLI::App app{"fuzz", "pali3"};
        pipeline::options o;
        bool json = false;
        std::string image;
        parser() {
            app.require_subcommand(1);
            auto* c = app.add_subcommand("caption", "");
            c->add_option("image", image, "");
            cli::add_pipeline_flags(c, o, json);
        }
    };
    static std::unique_ptr<parser> fresh;
    static std::size_t uses = 0;
    if (!fresh || ++uses % 4096 == 0) fresh = std::make_unique<parser>();
    parser& p = *fresh;
    p.o = pipeline::options{};
    p.json = false;
    p.image.clear();
    p.app.clear();
    auto& app = p.app;
    auto& o = p.o;
    weights::allow_nonfinite_weights = false;
    try {
        app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::Error&) {
        return 0;
    } catch (const pali3::error&) {  // a flag refused by our own parser (--mean / --std / --resize), as pali3's main reports it
        return 0;
    }
    weights::allow_nonfinite_weights = false;
    const bool in_range = o.threads >= 1 && o.threads <= cli::max_threads && o.beam >= 1 && o.beam <= cli::max_beam &&
                          o.max_new_tokens >= 1 && o.max_new_tokens <= cli::max_new_tokens_limit && o.max_prompt_tokens >= 1 &&
                          o.max_prompt_tokens <= cli::max_prompt_limit && std::isfinite(o.length_penalty) && o.length_penalty >= 0 &&
                          o.length_penalty <= 10 && (o.dtype == "f32" || o.dtype == "bf16") && o.config.resolution <= 8192 &&
                          o.max_memory <= std::size_t{1000000} * 1000000000;
    if (!in_range) std::abort();
    o.config.file.clear();  // never open files the fuzzer names
    try {
        if (const auto found = pipeline::find_config(o.config, nullptr)) {
            models::require_memory(models::estimate_memory(found->config, pipeline::run_request_of(o)), o.max_memory ? o.max_memory : std::size_t{1} << 40, "fuzz");
            (void)models::config_from_string(models::config_to_string(found->config));
        }
    } catch (const pali3::error&) {
    }
    return 0;
}
