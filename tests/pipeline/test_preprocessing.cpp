// Pillow's resize byte for byte (reference files made by scripts/make_pil_reference.py with
// Debian's python3-pil), HF's rescale/normalise, and preprocessor_config.json key by key.
#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/io/image.hpp"
#include "pali3/pipeline/preprocessing.hpp"
#include "pali3/vision/pil_resize.hpp"
#include "pali3/vision/preprocess.hpp"

using namespace pali3;
using Catch::Contains;

namespace {
std::vector<std::uint8_t> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
const std::string pil_dir = std::string(PALI3_TEST_DATA_DIR) + "/pil/";

json::value parse(const std::string& text) { return json::parse(text, "test"); }

const char* siglip_processor = R"({"do_normalize": true, "do_rescale": true, "do_resize": true,
  "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
  "processor_class": "SiglipProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
  "size": {"height": 24, "width": 24}})";
}  // namespace

TEST_CASE("Pillow resize: the bytes python3-pil gives, bilinear and bicubic, down and up", "[image][pil]") {
    const io::image src = io::load_image(pil_dir + "source.png");
    REQUIRE(src.width == 53);
    REQUIRE(src.height == 41);
    const std::array<std::pair<std::size_t, std::size_t>, 6> sizes{{{16, 16}, {24, 24}, {31, 17}, {70, 45}, {53, 20}, {24, 41}}};
    for (const auto& [name, filter] : {std::pair{"bicubic", vision::pil_filter::bicubic}, std::pair{"bilinear", vision::pil_filter::bilinear}})
        for (const auto& [w, h] : sizes) {
            INFO(name << " " << w << "x" << h);
            const auto expect = read_bytes(pil_dir + name + "_" + std::to_string(w) + "x" + std::to_string(h) + ".bin");
            const io::image got = vision::pil_resize(src, w, h, filter);
            REQUIRE(got.rgb.size() == expect.size());
            std::size_t differ = 0;
            for (std::size_t i = 0; i < expect.size(); ++i) differ += got.rgb[i] != expect[i];
            CHECK(differ == 0);
        }
    // Same size: unchanged, as Pillow returns a copy.
    CHECK(vision::pil_resize(src, 53, 41, vision::pil_filter::bicubic).rgb == src.rgb);
    CHECK_THROWS_AS(vision::pil_resize(src, 0, 5, vision::pil_filter::bicubic), value_error);
    CHECK_THROWS_AS(vision::pil_resize(src.rgb.data(), 0, 41, 3, 5, 5, vision::pil_filter::bicubic), shape_error);
}

TEST_CASE("preprocess with an HF processor: Pillow bicubic, x / 255, mean and std", "[image][pil]") {
    const io::image src = io::load_image(pil_dir + "source.png");
    const auto bytes = read_bytes(pil_dir + "bicubic_24x24.bin");
    vision::preprocess_options o;
    o.size = 24;
    o.resize = vision::resize_method::pil_bicubic;
    o.mean = {0.48145466f, 0.4578275f, 0.40821073f};  // CLIP's, to see each channel's own
    o.std = {0.26862954f, 0.26130258f, 0.27577711f};
    const auto px = vision::preprocess(src, o);
    REQUIRE(px.size() == 3 * 24 * 24);
    double worst = 0;
    for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t i = 0; i < 24 * 24; ++i) {
            const double expect = (bytes[i * 3 + c] * (1.0 / 255.0) - o.mean[c]) / o.std[c];  // HF: float64, then float32
            worst = std::max(worst, std::abs(px[c * 576 + i] - expect) / std::max(1.0, std::abs(expect)));
        }
    CHECK(worst < 1e-6);
    // The default stays big_vision's: tf bilinear, [-1, 1].
    const auto bv = vision::preprocess(src, {24});
    CHECK(bv != px);
    // No resize: the image must already have the size.
    o.do_resize = false;
    CHECK_THROWS_WITH(vision::preprocess(src, o), Contains("expected 24 x 24, found 53 x 41"));
    o.do_resize = true;
    o.std[1] = 0.f;
    CHECK_THROWS_WITH(vision::preprocess(src, o), Contains("image std"));
    o.std[1] = 1.f;
    o.antialias = true;
    CHECK_THROWS_WITH(vision::preprocess(src, o), Contains("antialias"));
}

TEST_CASE("preprocessor_config.json: every key honoured, checked or reported", "[image][config]") {
    std::vector<std::string> unknown;
    const auto o = pipeline::preprocessing_from_hf(parse(siglip_processor), 24, "m/preprocessor_config.json", &unknown);
    CHECK(unknown.empty());
    CHECK(o.resize == vision::resize_method::pil_bicubic);
    CHECK(o.rescale == Approx(1.0 / 255));
    CHECK(o.mean == std::array<float, 3>{0.5f, 0.5f, 0.5f});
    const auto with = [](const std::string& key, const std::string& value) {
        json::value v = json::parse(siglip_processor, "t");
        v.set(key, json::parse(value, "t"));
        return v;
    };
    CHECK(pipeline::preprocessing_from_hf(with("resample", "2"), 24, "p").resize == vision::resize_method::pil_bilinear);
    CHECK_THROWS_WITH(pipeline::preprocessing_from_hf(with("resample", "1"), 24, "m/p.json"),
                      Contains("unsupported resample filter (at m/p.json.resample)"));
    CHECK(pipeline::preprocessing_from_hf(with("do_rescale", "false"), 24, "p").rescale == 1.f);
    const auto no_norm = pipeline::preprocessing_from_hf(with("do_normalize", "false"), 24, "p");
    CHECK((no_norm.mean == std::array<float, 3>{0, 0, 0} && no_norm.std == std::array<float, 3>{1, 1, 1}));
    CHECK(pipeline::preprocessing_from_hf(with("image_mean", "0.25"), 24, "p").mean == std::array<float, 3>{0.25f, 0.25f, 0.25f});
    CHECK_THROWS_WITH(pipeline::preprocessing_from_hf(with("image_std", "[0.5, 0.5]"), 24, "m/p.json"),
                      Contains("m/p.json.image_std"));
    CHECK_THROWS_WITH(pipeline::preprocessing_from_hf(with("image_std", "[0.5, 0, 0.5]"), 24, "m/p.json"), Contains("image std"));
    CHECK(!pipeline::preprocessing_from_hf(with("do_resize", "false"), 24, "p").do_resize);
    CHECK_THROWS_WITH(pipeline::preprocessing_from_hf(with("do_center_crop", "true"), 24, "m/p.json"),
                      Contains("unsupported preprocessing (at m/p.json.do_center_crop)"));
    CHECK_NOTHROW(pipeline::preprocessing_from_hf(with("do_center_crop", "false"), 24, "p"));
    CHECK_THROWS_WITH(pipeline::preprocessing_from_hf(with("size", R"({"shortest_edge": 224})"), 24, "m/p.json"),
                      Contains("unsupported resize (at m/p.json.size)"));
    CHECK_THROWS_WITH(pipeline::preprocessing_from_hf(with("size", R"({"height": 24, "width": 32})"), 24, "m/p.json"),
                      Contains("non-square resize"));
    unknown.clear();
    (void)pipeline::preprocessing_from_hf(with("size", R"({"height": 384, "width": 384})"), 24, "m/p.json", &unknown);
    (void)pipeline::preprocessing_from_hf(with("crop_pct", "0.9"), 24, "m/p.json", &unknown);
    REQUIRE(unknown.size() == 2);
    CHECK_THAT(unknown[0], Contains("m/p.json.size (384 x 384: the model runs at 24)"));
    CHECK(unknown[1] == "m/p.json.crop_pct");
}

TEST_CASE("preprocessing of a run: flags, else the file beside the checkpoint, else big_vision", "[image][config]") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / "pali3_test_preprocessing";
    fs::create_directories(dir);
    const std::string ckpt = (dir / "model.safetensors").string();
    fs::remove(dir / "preprocessor_config.json");
    std::string source;
    auto o = pipeline::resolve_preprocessing({}, ckpt, 24, &source);
    CHECK(o.resize == vision::resize_method::tf_bilinear);
    CHECK_THAT(source, Contains("big_vision"));
    std::ofstream(dir / "preprocessor_config.json") << siglip_processor;
    o = pipeline::resolve_preprocessing({}, ckpt, 24, &source);
    CHECK(o.resize == vision::resize_method::pil_bicubic);
    CHECK(source == (dir / "preprocessor_config.json").string());
    pipeline::preprocessing_request r;
    r.resize = vision::resize_method::tf_bilinear;
    r.mean = std::array<float, 3>{0.f, 0.f, 0.f};
    o = pipeline::resolve_preprocessing(r, ckpt, 24, &source);
    CHECK(o.resize == vision::resize_method::tf_bilinear);
    CHECK(o.mean == std::array<float, 3>{0, 0, 0});
    CHECK(o.std == std::array<float, 3>{0.5f, 0.5f, 0.5f});  // from the file
    CHECK_THAT(source, Contains("+ flags"));
    pipeline::preprocessing_request aa;
    aa.antialias = true;  // with Pillow's resize from the file: refused, not silently ignored
    CHECK_THROWS_WITH(pipeline::resolve_preprocessing(aa, ckpt, 24), Contains("--antialias"));
    std::ofstream(dir / "preprocessor_config.json") << "{\"resample\": ";
    CHECK_THROWS_AS(pipeline::resolve_preprocessing({}, ckpt, 24), format_error);
    fs::remove_all(dir);
}
