// Tokenizer (trained here, with and without built-in PaLI tokens), image decoding limits and
// preprocessing, the VQ-VAE decoder's convolutions, and task output parsing.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/generation/tasks.hpp"
#include "pali3/io/image.hpp"
#include "pali3/text/tokenizer.hpp"
#include "pali3/text/trainer.hpp"
#include "pali3/vision/preprocess.hpp"
#include "pali3/vision/vqvae.hpp"
#include "pali3/weights/file.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using Catch::Contains;

namespace {

std::filesystem::path temp_dir(const std::string& name) {
    auto d = std::filesystem::temp_directory_path() / ("pali3_test_" + name);
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
}

const std::string corpus = std::string(PALI3_SOURCE_DIR) + "/examples/data/corpus.txt";

// Trained once per process: both flavours.
const text::tokenizer& tokenizer_with_symbols(bool native) {
    static const auto make = [](bool n) {
        const auto dir = temp_dir(n ? "spm_native" : "spm_plain");
        return text::tokenizer::load(text::train_tokenizer(corpus, (dir / "spm").string(), n ? 1400 : 300, n));
    };
    static const text::tokenizer native_tok = make(true), plain_tok = make(false);
    return native ? native_tok : plain_tok;
}

}  // namespace

TEST_CASE("tokenizer: a model sentencepiece rejects by exception is a format_error", "[text][robustness]") {
    // Found by fuzz/fuzz_tokenizer: a piece of length zero makes sentencepiece 0.1.97's trie builder
    // throw Darts::Details::Exception from LoadFromSerializedProto (the CLI said "unexpected error").
    std::ifstream in(std::string(PALI3_SOURCE_DIR) + "/fuzz/corpus/tokenizer/zero_length_piece.model", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() > 100);
    CHECK_THROWS_WITH(text::tokenizer::from_serialized(bytes), Contains("cannot load sentencepiece model") && Contains("zero-length key"));
    CHECK_THROWS_AS(text::tokenizer::from_serialized(std::string_view(bytes).substr(0, 37)), format_error);
    // Also found by it: a denormalizer character map whose trie claims 1 byte made sentencepiece's
    // Decode read far outside the map (SEGV); maps are now checked the way their lookup reads them.
    std::ifstream bad(std::string(PALI3_SOURCE_DIR) + "/fuzz/corpus/tokenizer/bad_denormalizer_charmap.model", std::ios::binary);
    const std::string bad_bytes((std::istreambuf_iterator<char>(bad)), std::istreambuf_iterator<char>());
    REQUIRE(bad_bytes.size() > 100);
    CHECK_THROWS_WITH(text::tokenizer::from_serialized(bad_bytes), Contains("sound denormalizer character map") && Contains("trie of 1 bytes"));
    // The check itself, on maps made here: sound, then each kind of damage.
    CHECK(text::detail::charmap_problem("").empty());
    std::string map(4 + 4 * 256 + 2, '\0');
    map[0] = 0;
    map[1] = 4;  // trie of 1024 bytes = 256 zero units: the root's children are units 0..255, none labelled
    map[4 + 4 * 256] = 'x';
    CHECK(text::detail::charmap_problem(map).empty());
    CHECK_THAT(text::detail::charmap_problem(map.substr(0, 3)), Contains("takes 4"));
    auto unterminated = map;
    unterminated.back() = 'y';
    CHECK_THAT(text::detail::charmap_problem(unterminated), Contains("NUL-terminated"));
    auto far = map;
    far[4 + 2] = static_cast<char>(0x04);  // root unit 256 << 10: offset 256, its children at units 256..511 of 256
    CHECK_THAT(text::detail::charmap_problem(far), Contains("outside the trie"));
}

TEST_CASE("tokenizer: round trips, PaLI tokens as single ids, bad input", "[text]") {
    for (const bool native : {true, false}) {
        INFO("PaLI tokens in the model: " << native);
        const auto& tok = tokenizer_with_symbols(native);
        CHECK(tok.native_pali_tokens() == native);
        CHECK(tok.eos_id() == 1);
        CHECK(tok.pad_id() == 0);
        const std::string text = "a cat sitting on the grass";
        const auto ids = tok.encode(text);
        CHECK(ids.back() == tok.eos_id());
        CHECK(tok.decode(ids) == text);
        // Special tokens: one id each, both directions, anywhere in the text.
        const std::string det = "<loc0012><loc0345><loc1023><loc0000> cat ; <seg127><seg000>dog";
        const auto d = tok.encode(det, false);
        CHECK(std::count_if(d.begin(), d.end(), [&](int id) { return tok.loc_index(id).has_value(); }) == 4);
        CHECK(std::count_if(d.begin(), d.end(), [&](int id) { return tok.seg_index(id).has_value(); }) == 2);
        CHECK(*std::find_if(d.begin(), d.end(), [&](int id) { return tok.loc_index(id).has_value(); }) == tok.loc_id(12));
        CHECK(*tok.loc_index(tok.loc_id(1023)) == 1023);
        CHECK(*tok.seg_index(tok.seg_id(127)) == 127);
        CHECK(tok.decode(d).find("<loc0345>") != std::string::npos);
        CHECK(tok.decode(d).find("<seg127><seg000>") != std::string::npos);
        CHECK(tok.vocab_size() >= tok.model_pieces());
        if (!native) CHECK(tok.vocab_size() == tok.model_pieces() + 1152);
        // "<loc12>" is not a location token: ordinary text.
        const auto not_loc = tok.encode("<loc12>", false);
        CHECK(std::none_of(not_loc.begin(), not_loc.end(), [&](int id) { return tok.loc_index(id).has_value(); }));
        // Empty prompt: just EOS. Invalid UTF-8: an error naming the offset.
        CHECK(tok.encode("") == std::vector<std::int32_t>{tok.eos_id()});
        CHECK_THROWS_WITH(tok.encode("caption \xff\xfe"), Contains("not valid UTF-8") && Contains("offset 8"));
        CHECK_THROWS_WITH(tok.decode(std::vector<std::int32_t>{static_cast<std::int32_t>(tok.vocab_size())}), Contains("out of range"));
        CHECK_THROWS_AS(tok.loc_id(1024), value_error);
    }
    CHECK_THROWS_WITH(text::tokenizer::load("/nonexistent.model"), Contains("cannot load sentencepiece model"));
    const auto dir = temp_dir("spm_bad");
    std::ofstream((dir / "bad.model").string()) << "this is not a protobuf";
    CHECK_THROWS_WITH(text::tokenizer::load((dir / "bad.model").string()), Contains("cannot load sentencepiece model"));
}

TEST_CASE("images: PNG/BMP/JPEG round trip, grey and RGBA to RGB, corrupt and absurd files", "[image]") {
    const auto dir = temp_dir("images");
    const std::size_t w = 13, h = 7;
    std::vector<std::uint8_t> rgba(w * h * 4);
    for (std::size_t i = 0; i < rgba.size(); ++i) rgba[i] = static_cast<std::uint8_t>((i * 37) % 251);
    io::write_png((dir / "rgba.png").string(), w, h, 4, rgba.data());
    const auto img = io::load_image((dir / "rgba.png").string());
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    for (std::size_t p = 0; p < w * h; ++p)
        for (std::size_t c = 0; c < 3; ++c) REQUIRE(img.rgb[p * 3 + c] == rgba[p * 4 + c]);
    // JPEG (lossy): a smooth 37 x 23 image comes back close at quality 95, less close at 20, and the
    // file is one stb_image reads as JPEG; quality and size out of range are refused by name.
    {
        const std::size_t jw = 37, jh = 23;
        std::vector<std::uint8_t> smooth(jw * jh * 3);
        for (std::size_t y = 0; y < jh; ++y)
            for (std::size_t x = 0; x < jw; ++x)
                for (std::size_t c = 0; c < 3; ++c)
                    smooth[(y * jw + x) * 3 + c] = static_cast<std::uint8_t>(60 + 3 * x + 4 * y + 25 * c);
        const auto err_at = [&](int quality) {
            const auto path = (dir / ("q" + std::to_string(quality) + ".jpg")).string();
            io::write_jpeg(path, jw, jh, 3, smooth.data(), quality);
            std::ifstream f(path, std::ios::binary);
            REQUIRE(f.get() == 0xFF);
            REQUIRE(f.get() == 0xD8);  // SOI: a JPEG stream
            const auto back = io::load_image(path);
            REQUIRE((back.width == jw && back.height == jh));
            double num = 0, den = 0;
            for (std::size_t i = 0; i < smooth.size(); ++i) {
                num += std::pow(double(back.rgb[i]) - double(smooth[i]), 2);
                den += std::pow(double(smooth[i]), 2);
            }
            return std::sqrt(num / den);
        };
        const double hi = err_at(95), lo = err_at(20);
        INFO("relative RMS error at quality 95: " << hi << ", at 20: " << lo);
        CHECK(hi < 0.02);
        CHECK(hi < lo);
        CHECK(hi > 0);  // lossy: not a PNG in disguise
        CHECK_THROWS_WITH(io::write_jpeg((dir / "x.jpg").string(), jw, jh, 3, smooth.data(), 0), Contains("JPEG quality") && Contains("1..100"));
        CHECK_THROWS_WITH(io::write_jpeg((dir / "x.jpg").string(), jw, jh, 3, smooth.data(), 101), Contains("JPEG quality"));
        CHECK_THROWS_WITH(io::write_jpeg((dir / "x.jpg").string(), 0, jh, 3, smooth.data(), 90), Contains("JPEG size"));
        CHECK_THROWS_WITH(io::write_jpeg((dir / "no/such/dir.jpg").string(), jw, jh, 3, smooth.data(), 90), Contains("cannot create JPEG"));
    }
    std::vector<std::uint8_t> grey(w * h, 77);
    stbi_write_bmp((dir / "grey.bmp").string().c_str(), static_cast<int>(w), static_cast<int>(h), 1, grey.data());
    const auto g = io::load_image((dir / "grey.bmp").string());
    CHECK(g.rgb[5] == 77);
    // Truncated, corrupt, empty, missing.
    std::ifstream in((dir / "rgba.png").string(), std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    CHECK_THROWS_WITH(io::decode_image(bytes.data(), bytes.size() / 2, "half.png"), Contains("half.png"));
    std::vector<std::uint8_t> junk(100, 0x42);
    CHECK_THROWS_WITH(io::decode_image(junk.data(), junk.size(), "junk"), Contains("unknown image type"));
    const std::uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0};  // stb parses GIF; we take JPEG, PNG, BMP
    CHECK_THROWS_WITH(io::decode_image(gif, sizeof gif, "x.gif"), Contains("unknown image type (at x.gif): expected JPEG, PNG or BMP"));
    // A PNG chunk whose declared length runs past the file (stb_image would size a buffer from it).
    std::vector<std::uint8_t> long_chunk = bytes;
    long_chunk[33] = 0x7f;  // the chunk after IHDR claims ~2 GB
    CHECK_THROWS_WITH(io::decode_image(long_chunk.data(), long_chunk.size(), "long.png"),
                      Contains("PNG chunk runs past the end of the file (at long.png byte 33)"));
    CHECK_THROWS_WITH(io::decode_image(junk.data(), 0, "empty"), Contains("empty image file"));
    CHECK_THROWS_WITH(io::load_image((dir / "missing.png").string()), Contains("cannot open image"));
    // PNG headers claiming 16000 x 16000 or 20000 x 10 pixels are refused before any pixel allocation.
    std::vector<std::uint8_t> huge = bytes;
    const auto put32 = [&](std::size_t at, std::uint32_t v) {
        for (int k = 0; k < 4; ++k) huge[at + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(v >> (24 - 8 * k));
    };
    put32(16, 16000);
    put32(20, 16000);
    CHECK_THROWS_WITH(io::decode_image(huge.data(), huge.size(), "huge.png"), Contains("dimensions out of range") && Contains("16000 x 16000"));
    put32(16, 20000);
    put32(20, 10);
    CHECK_THROWS_WITH(io::decode_image(huge.data(), huge.size(), "wide.png"), Contains("dimensions out of range") && Contains("20000 x 10"));
}

TEST_CASE("files: only regular files are read (a FIFO would block), writes are checked, messages printable", "[image][files]") {
    const auto dir = temp_dir("files");
    // a directory and a FIFO with no writer, as image, tokenizer, checkpoint: refused by name, no hang
    const auto fifo = (dir / "fifo").string();
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(io::load_image(dir.string()), Contains("cannot open image") && Contains("found a directory"));
    CHECK_THROWS_WITH(io::load_image(fifo), Contains("cannot open image") && Contains("found a FIFO"));
    CHECK_THROWS_WITH(text::tokenizer::load(fifo), Contains("sentencepiece") && Contains("found a FIFO"));
    CHECK_THROWS_WITH(text::tokenizer::load(dir.string()), Contains("found a directory"));
    CHECK_THROWS_WITH(weights::map_file(fifo), Contains("expected a regular file, found a FIFO"));
    CHECK_THROWS_WITH(io::load_image((dir / "none.png").string()), Contains("No such file"));
    // a write that fails at flush (/dev/full) is an error with the system's reason, not a success
    const std::uint8_t px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    if (std::filesystem::exists("/dev/full"))
        CHECK_THROWS_WITH(io::write_png("/dev/full", 2, 2, 3, px), Contains("cannot write PNG") && Contains("No space left"));
    CHECK_THROWS_WITH(io::write_png((dir / "no/such/dir.png").string(), 2, 2, 3, px), Contains("cannot create PNG"));
    CHECK_THROWS_WITH(io::write_png((dir / "z.png").string(), 0, 2, 3, px), Contains("PNG size"));
    // a rewrite replaces the file whole (temporary file + rename): a map of the old file keeps its
    // bytes (no SIGBUS from a truncated map), the new bytes are in place, no temporary is left
    const auto ckpt = (dir / "w.bin").string();
    weights::write_file(ckpt, std::string(4096, 'a'));
    const auto old_map = weights::map_file(ckpt);
    weights::write_file(ckpt, std::string(10, 'b'));
    CHECK(old_map.size == 4096u);
    CHECK(old_map.data[4095] == 'a');
    const auto new_map = weights::map_file(ckpt);
    CHECK(new_map.size == 10u);
    CHECK(new_map.data[0] == 'b');
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.path().filename().string().find("pali3-tmp") == std::string::npos ? 1 : 100;
    CHECK(files == 2u);  // fifo and w.bin
    // terminal escapes from a file name or a file's content come out escaped; long values are cut
    const std::string msg = core::describe("bad", "a\x1b[2Jb.png", "x", std::string(5000, 'y') + "\n");
    CHECK(msg.find('\x1b') == std::string::npos);
    CHECK_THAT(msg, Contains("a\\x1b[2Jb.png") && Contains("(4701 more bytes)"));
    CHECK(msg.size() < 1000);
}

TEST_CASE("files: a mapped file truncated in place by another program exits 1 naming it (opt-in guard)", "[files]") {
    // The read of a page the file no longer has faults (SIGBUS); with guard_mapped_files() the
    // process prints which file changed and exits 1. Run in a child: the parent checks its status
    // and its stderr.
    const auto dir = temp_dir("sigbus");
    const auto path = (dir / "shrinks.safetensors").string();
    weights::write_file(path, std::string(3 * 65536, 'w'));
    int err[2];
    REQUIRE(::pipe(err) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::dup2(err[1], 2);
        weights::guard_mapped_files();
        const auto m = weights::map_file(path);
        volatile std::uint8_t first = m.data[0];
        (void)first;
        if (::truncate(path.c_str(), 100) != 0) ::_exit(3);
        volatile std::uint8_t lost = m.data[2 * 65536 + 7];  // faults: the page is past the new end
        (void)lost;
        ::_exit(0);  // not reached when the guard works
    }
    ::close(err[1]);
    std::string text;
    char buf[512];
    for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(err[0]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK_THAT(text, Contains("file changed while in use (at " + path + ")") && Contains("truncated (read at offset 131079 of 196608 bytes)"));
}

TEST_CASE("preprocess: [-1, 1], bilinear with half-pixel centres, antialias", "[image]") {
    io::image img;
    img.width = 8;
    img.height = 4;
    img.rgb.resize(8 * 4 * 3);
    for (std::size_t y = 0; y < 4; ++y)
        for (std::size_t x = 0; x < 8; ++x)
            for (std::size_t c = 0; c < 3; ++c) img.at(y, x)[c] = static_cast<std::uint8_t>(c == 0 ? 255 : c == 1 ? 0 : x * 30);
    const auto out = vision::preprocess(img, {16, false});
    REQUIRE(out.size() == 3 * 16 * 16);
    for (std::size_t i = 0; i < 256; ++i) {
        REQUIRE(out[i] == 1.f);          // red 255 -> 1
        REQUIRE(out[256 + i] == -1.f);   // green 0 -> -1
    }
    // Blue ramps 0..210 along x: output column x samples source x' = (x + 0.5) * 0.5 - 0.5 (clamped).
    for (std::size_t x = 0; x < 16; ++x) {
        const double sx = std::clamp((x + 0.5) * 0.5 - 0.5, 0.0, 7.0);
        REQUIRE(out[512 + 3 * 16 + x] == Approx(sx * 30 / 127.5 - 1).margin(1e-5));
    }
    // Downscaling with antialias averages over the footprint: a 1-px checkerboard becomes flat grey.
    io::image chk;
    chk.width = chk.height = 64;
    chk.rgb.resize(64 * 64 * 3);
    for (std::size_t y = 0; y < 64; ++y)
        for (std::size_t x = 0; x < 64; ++x)
            for (std::size_t c = 0; c < 3; ++c) chk.at(y, x)[c] = (x + y) % 2 ? 255 : 0;
    const auto aa = vision::preprocess(chk, {16, true});
    for (std::size_t i = 0; i < 256; ++i) REQUIRE(std::abs(aa[i]) < 0.05f);
    CHECK_THROWS_AS(vision::preprocess(io::image{}, {16}), shape_error);
}

TEST_CASE("VQ-VAE decoder: transposed conv equals its gather form; 16 codes -> 64x64", "[vqvae]") {
    // Transposed conv (k4 s2 p1) against the gather definition in double precision, odd sizes.
    const std::size_t ci = 3, co = 5, h = 3, w = 5;
    const auto x = test::random_vector(ci * h * w, 1), wt = test::random_vector(ci * co * 16, 2), b = test::random_vector(co, 3);
    std::vector<float> y(co * 4 * h * w);
    vision::detail::conv_transpose_k4s2p1(x.data(), ci, h, w, wt.data(), b.data(), co, y.data());
    double worst = 0;
    for (std::size_t o = 0; o < co; ++o)
        for (std::size_t oy = 0; oy < 2 * h; ++oy)
            for (std::size_t ox = 0; ox < 2 * w; ++ox) {
                double acc = b[o];
                for (std::size_t c = 0; c < ci; ++c)
                    for (std::size_t ky = 0; ky < 4; ++ky)
                        for (std::size_t kx = 0; kx < 4; ++kx) {
                            const long ny = static_cast<long>(oy) + 1 - static_cast<long>(ky), nx = static_cast<long>(ox) + 1 - static_cast<long>(kx);
                            if (ny % 2 || nx % 2 || ny < 0 || nx < 0 || ny / 2 >= static_cast<long>(h) || nx / 2 >= static_cast<long>(w)) continue;
                            acc += static_cast<double>(x[(c * h + static_cast<std::size_t>(ny / 2)) * w + static_cast<std::size_t>(nx / 2)]) *
                                   wt[((c * co + o) * 4 + ky) * 4 + kx];
                        }
                worst = std::max(worst, std::abs(acc - y[(o * 2 * h + oy) * 2 * w + ox]) / std::max(1.0, std::abs(acc)));
            }
    CHECK(worst < 1e-5);
    // The whole decoder on seeded weights (small widths), deterministic, 64x64.
    const vision::vqvae_config c{128, 24, 16};
    const weights::random_source src(4);
    const vision::vqvae_decoder vae(c, weights::cursor(src));
    std::vector<int> codes(16);
    for (int i = 0; i < 16; ++i) codes[static_cast<std::size_t>(i)] = (i * 37) % 128;
    const auto m = vae.decode(codes);
    CHECK(m.size() == 64 * 64);
    CHECK(vae.decode(codes) == m);
    codes[3] = 128;
    CHECK_THROWS_WITH(vae.decode(codes), Contains("code out of range"));
    CHECK_THROWS_AS(vae.decode(std::vector<int>(15, 0)), shape_error);
    // The published checkpoint's names (vae-oid.npz).
    const auto names = layers::parameters(const_cast<vision::vqvae_decoder&>(vae));
    CHECK(names.front().name == "_vq_vae._embedding");
    CHECK(std::any_of(names.begin(), names.end(), [](const auto& p) { return p.name == "decoder.3.net.4.weight"; }));
    // ConvTranspose weights are (in, out, 4, 4): channels 16 -> 16 -> 8 -> 4 -> 2 at width 16.
    CHECK(std::any_of(names.begin(), names.end(), [](const auto& p) { return p.name == "decoder.10.weight" && p.shape == shape_t{4, 2, 4, 4}; }));
}

TEST_CASE("task outputs: boxes, masks, and malformed sequences", "[tasks]") {
    const auto& tok = tokenizer_with_symbols(false);
    const auto ids = tok.encode("<loc0000><loc0100><loc0511><loc1023> cat ; <loc0200><loc0200><loc0100><loc0300> dog ; <loc0001> bird");
    const auto objs = generation::parse_objects(ids, tok, 480, 640);
    REQUIRE(objs.size() == 3);
    REQUIRE(objs[0].where);
    CHECK(objs[0].label == "cat");
    CHECK(objs[0].where->y1 == 0.f);
    CHECK(objs[0].where->x1 == Approx(100 * 640 / 1023.f));
    CHECK(objs[0].where->y2 == Approx(511 * 480 / 1023.f));
    CHECK(objs[0].where->x2 == Approx(640.f));
    CHECK_FALSE(objs[1].where);
    CHECK(objs[1].problem.find("inverted") != std::string::npos);
    CHECK_FALSE(objs[2].where);
    CHECK(objs[2].problem.find("expected 4 <loc> tokens, found 1") != std::string::npos);
    // Text before the first box is skipped; a run of 8 <loc> is two boxes (big_vision's regex does the same).
    const auto run = generation::parse_objects(tok.encode("a <loc0001><loc0002><loc0010><loc0020><loc0003><loc0004><loc0030><loc0040> x"), tok, 1023, 1023);
    REQUIRE(run.size() == 2);
    CHECK(run[0].where);
    CHECK(run[0].label.empty());
    CHECK(run[1].where->x2 == Approx(40.f));
    CHECK(run[1].label == "x");
    // Segmentation: 4 loc + 16 seg + label; a short seg run is "no mask".
    std::string seg = "<loc0100><loc0100><loc0900><loc0900>";
    for (int i = 0; i < 16; ++i) seg += text::seg_token(i * 7);
    const auto s = generation::parse_objects(tok.encode(seg + " cat"), tok, 64, 64);
    REQUIRE(s.size() == 1);
    CHECK(s[0].seg_codes.size() == 16);
    const auto short_seg = generation::parse_objects(tok.encode("<loc0100><loc0100><loc0900><loc0900><seg001> cat"), tok, 64, 64);
    CHECK(short_seg[0].seg_codes.empty());
    CHECK(short_seg[0].problem.find("expected 16 <seg> tokens, found 1") != std::string::npos);
    const vision::vqvae_config c{128, 24, 16};
    const weights::random_source src(4);
    const vision::vqvae_decoder vae(c, weights::cursor(src));
    const auto mask = generation::object_mask(s[0], vae, 64, 64);
    REQUIRE(mask.size() == 64 * 64);
    for (std::size_t y = 0; y < 64; ++y)
        for (std::size_t x = 0; x < 64; ++x)
            if (y < 6 || x < 6 || y >= 57 || x >= 57) REQUIRE(mask[y * 64 + x] == 0);  // only inside the box
    CHECK(generation::object_mask(short_seg[0], vae, 64, 64).empty());
    // Garbage never throws: random ids, empty output, ids out of range.
    for (std::uint32_t seed = 0; seed < 50; ++seed) {
        std::vector<std::int32_t> junk(1 + seed % 30);
        std::uint32_t r = seed * 2654435761u + 1;
        for (auto& j : junk) {
            r = r * 1664525u + 1013904223u;
            j = static_cast<std::int32_t>(r % (tok.vocab_size() + 50)) - 10;
        }
        REQUIRE_NOTHROW(generation::parse_objects(junk, tok, 100, 100));
    }
    CHECK(generation::parse_objects(std::vector<std::int32_t>{}, tok, 10, 10).empty());
}
