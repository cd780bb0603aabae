// The `pali3` command line: one subcommand per file in tools/, each with --help.
#include <cstdio>
#include <new>
#include <string>

#include <pali3/core/malloc_tuning.hpp>
#include <pali3/weights/file.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
    pali3::core::retain_freed_memory();  // training and generation reuse freed activations (core/malloc_tuning.hpp)
    pali3::weights::guard_mapped_files();  // a checkpoint truncated by another program while mapped: exit 1 naming it
    pali3::pipeline::config_notes() = [](const std::string& note) { std::fprintf(stderr, "note: %s\n", note.c_str()); };
    CLI::App app{"pali3 - PaLI-3 family models on CPUs (docs/pipeline.md)", "pali3"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "every command's flags");
    using namespace pali3::cli;
    add_inspect(app);
    add_make_demo(app);
    add_make_scenes(app);
    add_eval(app);
    add_caption(app);
    add_vqa(app);
    add_detect(app);
    add_segment(app);
    add_generate(app);
    add_embed(app);
    add_dump(app);
    add_bench(app);
    add_init(app);
    add_convert(app);
    add_grad(app);
    add_train(app);
    auto* help = app.add_subcommand("help", "list the commands (pali3 COMMAND --help: its flags)");
    help->callback([&app] { std::printf("%s", app.help().c_str()); });
    const std::string cmd = argc > 1 ? argv[1] : "";
    bool known = false;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) known = known || sub->get_name() == cmd;
    if (!cmd.empty() && cmd[0] != '-' && !known) {
        std::fprintf(stderr, "pali3: unknown command '%s' (see pali3 --help)\n", cmd.c_str());
        return 1;
    }
    try {
        app.parse(argc, argv);
        return 0;
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::RuntimeError& e) {  // a command's own exit status (inspect: 2 when the checkpoint does not fit)
        return e.get_exit_code();
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "pali3 %s: error: %s (see pali3 %s--help)\n", cmd.c_str(), e.what(), known ? (cmd + " ").c_str() : "");
        return 1;
    } catch (const pali3::error& e) {
        std::fprintf(stderr, "pali3 %s: error: %s\n", cmd.c_str(), e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr,
                     "pali3 %s: error: out of memory: the machine refused an allocation (the estimate checked by --max-memory "
                     "was under it; lower --max-new-tokens, --beam, --batch or --resolution)\n",
                     cmd.c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pali3 %s: unexpected error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
}
