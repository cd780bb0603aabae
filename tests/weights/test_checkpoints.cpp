// Checkpoint formats: JSON, safetensors (single, sharded), npz (numpy-written fixtures, our
// writer, ZIP64), name maps (HF SigLIP, HF T5 v1.0/v1.1, big_vision per-block and scan), and one
// test per class of hostile input.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/core/json.hpp"
#include "pali3/models/siglip.hpp"
#include "pali3/models/t5.hpp"
#include "pali3/models/vit.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/name_maps.hpp"
#include "pali3/weights/npz.hpp"
#include "pali3/weights/random_source.hpp"
#include "pali3/weights/safetensors.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::weights;
using Catch::Contains;

namespace {

byte_buffer buf(const std::string& s, std::string name = "test.safetensors") {
    return buffer_from(std::vector<std::uint8_t>(s.begin(), s.end()), std::move(name));
}

// A safetensors file from a raw header and a data buffer.
std::string raw_safetensors(const std::string& header, const std::string& data, std::uint64_t claimed_len = 0) {
    std::string out;
    store_le(out, claimed_len ? claimed_len : header.size(), 8);
    return out + header + data;
}

std::filesystem::path temp_dir(const std::string& name) {
    auto d = std::filesystem::temp_directory_path() / ("pali3_test_" + name);
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
}

memory_source sample_tensors() {
    memory_source m;
    m.add<float>("a.weight", test::random_vector(7 * 13, 1), {7, 13});
    m.add<bf16>("b.bias", test::to_storage<bf16>(test::random_vector(17, 2)), {17});
    m.add<f16>("c/kernel", test::to_storage<f16>(test::random_vector(3 * 5 * 2, 3)), {3, 5, 2});
    return m;
}

void require_same_bytes(const tensor_data& a, const tensor_data& b) {
    REQUIRE(a.type == b.type);
    REQUIRE(a.shape == b.shape);
    REQUIRE(std::memcmp(a.data, b.data, a.size() * dtype_size(a.type)) == 0);
}

}  // namespace

TEST_CASE("JSON: strict parsing and round trips", "[weights][json]") {
    const auto v = json::parse(R"({"a": [1, 2.5, -3e2, true, null], "s": "\u00e9\ud83d\ude00\n", "big": 18446744073709551615})");
    CHECK(v.at("a").items().size() == 5);
    CHECK(v.at("big").as_u64() == 18446744073709551615ull);
    CHECK(v.at("s").as_string() == "\xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK(json::parse(json::dump(v)).at("s").as_string() == v.at("s").as_string());
    CHECK_THROWS_WITH(json::parse(R"({"x": 1, "x": 2})"), Contains("duplicate key \"x\""));
    CHECK_THROWS_WITH(json::parse("{\"x\": \"\xff\"}"), Contains("valid UTF-8"));
    CHECK_THROWS_WITH(json::parse("{\"x\": \"\xc0\xaf\"}"), Contains("valid UTF-8"));  // overlong '/'
    CHECK_THROWS_WITH(json::parse(std::string(100, '[') + std::string(100, ']')), Contains("nesting depth"));
    CHECK_THROWS_WITH(json::parse("{} x"), Contains("trailing"));
    CHECK_THROWS_WITH(json::parse(R"({"x": 01})"), Contains("',' or '}'"));
    CHECK_THROWS_WITH(json::parse(R"(["\ud800"])"), Contains("low surrogate"));
    CHECK_THROWS_WITH(json::parse("{\"x\": 18446744073709551616}").at("x").as_u64("x"), Contains("out of range"));
    CHECK_THROWS_WITH(json::parse("{\"x\": -1}").at("x").as_u64("x"), Contains("non-negative integer"));
}

TEST_CASE("safetensors: write, read zero copy, metadata, files and shards", "[weights][safetensors]") {
    const memory_source m = sample_tensors();
    std::map<std::string, tensor_data> all;
    for (const auto& n : m.names()) all.emplace(n, *m.find(n));
    const std::string bytes = to_safetensors(all, {{"pali3.config", "{\"kind\":\"test\"}"}});
    auto src = safetensors_source::from_buffer(buf(bytes));
    CHECK(src.metadata().at("pali3.config") == "{\"kind\":\"test\"}");
    CHECK(src.names() == m.names());
    for (const auto& n : m.names()) {
        const tensor_data t = src.get(n, m.find(n)->shape);
        require_same_bytes(t, *m.find(n));
    }
    // zero copy: the f32 tensor points into the buffer
    const auto t = src.get("a.weight", {7, 13});
    CHECK(t.data != m.find("a.weight")->data);
    CHECK_THROWS_WITH(src.get("a.weight", {13, 7}), Contains("(13, 7)") && Contains("(7, 13)") && Contains("a.weight"));
    CHECK_THROWS_WITH(src.get("nope", {1}), Contains("missing tensor") && Contains("nope"));
    // Converted on load when the module's storage differs.
    const auto as_bf16 = to_param<bf16>(src.get("a.weight", {7, 13}));
    CHECK(to_float(as_bf16.data[3]) == Approx(static_cast<const float*>(t.data)[3]).epsilon(1e-2));

    const auto dir = temp_dir("safetensors");
    write_safetensors((dir / "one.safetensors").string(), m, {{"k", "v"}});
    const auto file = safetensors_source::open((dir / "one.safetensors").string());
    require_same_bytes(file.get("c/kernel", {3, 5, 2}), *m.find("c/kernel"));
    CHECK(file.metadata().at("k") == "v");

    write_safetensors_sharded(dir.string(), m, 200, {{"k", "sharded"}});
    const auto sharded = safetensors_source::open(dir.string());  // finds the index in the directory
    CHECK(sharded.shard_count() == 2);  // 364 bytes, then 34 + 60
    CHECK(sharded.metadata().at("k") == "sharded");
    for (const auto& n : m.names()) require_same_bytes(sharded.get(n, m.find(n)->shape), *m.find(n));
    CHECK(sharded.list().size() == 3);
}

TEST_CASE("safetensors: int8 weights (I8 values + NAME_scale) read as stored and dequantised; misfits named", "[weights][safetensors][int8]") {
    // values (n, k) I8, scales (n, groups) F32: w[j][i] = scale[j][i / group] * q[j][i].
    const std::size_t n = 5, k = 100;
    std::vector<std::int8_t> q(n * k);
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<std::int8_t>(static_cast<int>((i * 37) % 255) - 127);
    const auto int8_tensor = [&](const shape_t& shape) {
        tensor_data t;
        t.type = dtype::i8;
        t.shape = shape;
        auto owned = std::make_shared<std::vector<std::int8_t>>(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(shape_size(shape)));
        t.data = owned->data();
        t.owner = owned;
        return t;
    };
    const auto file_with = [&](const shape_t& scale_shape, const std::map<std::string, std::string>& meta, bool with_scale = true) {
        memory_source m;
        m.add_data("fc.weight", int8_tensor({n, k}));
        if (with_scale) m.add<float>("fc.weight_scale", test::random_vector(shape_size(scale_shape), 5, 0.01f), scale_shape);
        m.add<float>("fc.bias", test::random_vector(n, 6), {n});
        std::map<std::string, tensor_data> all;
        for (const auto& name : m.names()) all.emplace(name, *m.find(name));
        return std::make_pair(safetensors_source::from_buffer(buf(to_safetensors(all, meta))),
                              std::vector<float>(static_cast<const float*>(with_scale ? m.find("fc.weight_scale")->data : nullptr),
                                                 static_cast<const float*>(with_scale ? m.find("fc.weight_scale")->data : nullptr) +
                                                     (with_scale ? shape_size(scale_shape) : 0)));
    };
    struct form {
        shape_t scales;
        std::map<std::string, std::string> meta;
        std::size_t group;
    };
    // per row as (n) and (n, 1); per 64 stated (2 groups); per 32 inferred from (n, 4) without metadata.
    for (const form& f : {form{{n}, {}, 0}, form{{n, 1}, {}, 0}, form{{n, 2}, {{"int8_group", "64"}}, 64}, form{{n, 4}, {}, 32}}) {
        INFO("scales " << shape_string(f.scales) << ", group " << f.group);
        const auto [src, scales] = file_with(f.scales, f.meta);
        const auto w = src.get_int8("fc.weight", {n, k});
        REQUIRE(w);
        CHECK(w->group == f.group);
        CHECK(w->shape == shape_t{n, k});
        CHECK(std::equal(q.begin(), q.end(), w->values));
        CHECK(w->scales == scales);
        const std::size_t g = f.group ? f.group : k, groups = (k + g - 1) / g;
        const tensor_data t = src.get("fc.weight", {n, k});  // every other reader: f32, scale x value
        REQUIRE(t.type == dtype::f32);
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t i = 0; i < k; ++i)
                REQUIRE(static_cast<const float*>(t.data)[j * k + i] == scales[j * groups + i / g] * float(q[j * k + i]));
        // Through a cursor and a name map: as stored where the layout is kept, dequantised as a parameter.
        const mapped_source mapped(src, {{"{}", "{}"}});
        CHECK(cursor(mapped).get_int8("fc.weight", {n, k})->values == w->values);
        CHECK(cursor(mapped).get<float>("fc.weight", {n, k}).data[7] == static_cast<const float*>(t.data)[7]);
        CHECK_FALSE(src.get_int8("fc.bias", {n}));  // stored as F32: not an int8 weight
        CHECK_THROWS_WITH(src.get_int8("fc.weight", {k, n}), Contains("wrong shape") && Contains("(100, 5)"));
    }
    // Misfits: no scale tensor, a scale of the wrong shape, a stated group that does not make the
    // scales' groups, a non-finite scale; bare int8 values are never read as a float weight.
    CHECK_THROWS_WITH(file_with({n}, {}, false).first.get("fc.weight", {n, k}),
                      Contains("without its scale") && Contains("fc.weight_scale"));
    CHECK_THROWS_WITH(file_with({n + 1}, {}).first.get("fc.weight", {n, k}), Contains("does not fit") && Contains("(6)"));
    CHECK_THROWS_WITH(file_with({n, 3}, {}).first.get_int8("fc.weight", {n, k}), Contains("multiple of 32"));
    CHECK_THROWS_WITH(file_with({n, 2}, {{"int8_group", "32"}}).first.get("fc.weight", {n, k}), Contains("the metadata says 32"));
    CHECK_THROWS_WITH(file_with({n, 2}, {{"int8_group", "x"}}).first.get("fc.weight", {n, k}), Contains("int8_group"));
    {
        memory_source m;
        m.add_data("fc.weight", int8_tensor({n, k}));
        std::vector<float> s(n, 0.5f);
        s[3] = std::numeric_limits<float>::infinity();
        m.add<float>("fc.weight_scale", s, {n});
        std::map<std::string, tensor_data> all;
        for (const auto& name : m.names()) all.emplace(name, *m.find(name));
        CHECK_THROWS_WITH(safetensors_source::from_buffer(buf(to_safetensors(all))).get("fc.weight", {n, k}),
                          Contains("non-finite scale at element 3"));
        CHECK_THROWS_WITH(cursor(m).get<float>("fc.weight", {n, k}), Contains("int8 values without their scale"));
    }
    CHECK_THROWS_WITH(random_source(1, random_source::distribution::normal, dtype::i8), Contains("I8"));
}

TEST_CASE("safetensors: every hostile header is a clear error", "[weights][safetensors][hostile]") {
    const std::string data(64, '\x01');
    const auto open = [](const std::string& file) { return safetensors_source::from_buffer(buf(file)); };
    const auto one = [&](const std::string& entry) { return raw_safetensors("{\"t\":" + entry + "}", data); };
    CHECK_THROWS_WITH(open("abc"), Contains("truncated") && Contains("at least 8 bytes"));
    CHECK_THROWS_WITH(open(raw_safetensors("{}", "", 200'000'000)), Contains("header too large"));
    CHECK_THROWS_WITH(open(raw_safetensors("{}", "", 1000)), Contains("past the end of the file"));
    CHECK_THROWS_WITH(open(raw_safetensors("{\"t\": ", "")), Contains("invalid JSON"));
    CHECK_THROWS_WITH(open(raw_safetensors("{\"t\xfe\": 1}", "")), Contains("UTF-8"));
    CHECK_THROWS_WITH(open(raw_safetensors("[1]", "")), Contains("not a JSON object"));
    CHECK_THROWS_WITH(open(one("{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}")),
                      Contains("unknown dtype") && Contains("t") && Contains("Q7"));
    CHECK_THROWS_WITH(open(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,800]}")),
                      Contains("past the end") && Contains("end <= 64"));
    CHECK_THROWS_WITH(open(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}")), Contains("out of order"));
    CHECK_THROWS_WITH(open(one("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}")),
                      Contains("byte size does not match") && Contains("(3) x 4 bytes") && Contains("found 8 bytes"));
    CHECK_THROWS_WITH(open(one("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}")),
                      Contains("byte size does not match"));
    CHECK_THROWS_WITH(open(one("{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}")), Contains("non-negative integer"));
    CHECK_THROWS_WITH(open(one("{\"dtype\":\"F32\",\"shape\":[2]}")), Contains("missing key") && Contains("data_offsets"));
    CHECK_THROWS_WITH(open(one("7")), Contains("not an object"));
    CHECK_THROWS_WITH(open(raw_safetensors(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                           R"("t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data)),
                      Contains("duplicate key \"t\""));
    CHECK_THROWS_WITH(open(raw_safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                           R"("e":{"dtype":"F32","shape":[0],"data_offsets":[16,16]},)"
                                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data)),
                      Contains("overlap") && Contains("b") && Contains("end of a"));
    // Valid but unusual: an I64 tensor is listed, and loading it as a weight says why not.
    const auto ids = open(one("{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}"));
    CHECK(ids.list().at(0).dtype == "I64");
    CHECK_THROWS_WITH(ids.get("t", {2}), Contains("cannot be loaded as a weight") && Contains("I64"));

    // Sharded index: names must be files beside it, and shards must hold what the index says.
    const auto dir = temp_dir("safetensors_hostile");
    write_file((dir / "evil.index.json").string(), R"({"weight_map": {"t": "../etc/passwd"}})");
    CHECK_THROWS_WITH(safetensors_source::open((dir / "evil.index.json").string()), Contains("file beside the index"));
    write_safetensors((dir / "s.safetensors").string(), sample_tensors());
    write_file((dir / "lie.index.json").string(), R"({"weight_map": {"zzz": "s.safetensors"}})");
    CHECK_THROWS_WITH(safetensors_source::open((dir / "lie.index.json").string()), Contains("does not hold") && Contains("zzz"));
    CHECK_THROWS_WITH(safetensors_source::open((dir / "missing.safetensors").string()), Contains("cannot open file"));
}

TEST_CASE("npz: numpy-written archives (stored and deflate), dtypes, our writer, ZIP64", "[weights][npz]") {
    for (const char* file : {"numpy_savez.npz", "numpy_savez_compressed.npz"}) {
        INFO(file);
        const auto src = npz_source::open(std::string(PALI3_TEST_DATA_DIR) + "/" + file);
        CHECK(src.names() == std::vector<std::string>{"a/half", "bf/void", "c/double", "ids", "img/embedding/kernel"});
        // Values were written as arange(n) * 0.25 - 1 in each dtype.
        const auto expect = [](std::size_t i) { return static_cast<float>(i) * 0.25f - 1.f; };
        const auto k = to_param<float>(src.get("img/embedding/kernel", {2, 2, 3, 4}));
        for (std::size_t i = 0; i < k.size(); ++i) REQUIRE(k.data[i] == expect(i));
        const auto h = to_param<float>(src.get("a/half", {3}));
        for (std::size_t i = 0; i < 3; ++i) REQUIRE(h.data[i] == expect(i));
        const auto d = to_param<float>(src.get("c/double", {2, 3}));
        for (std::size_t i = 0; i < 6; ++i) REQUIRE(d.data[i] == expect(i));
        const auto bf = src.get("bf/void", {5});
        CHECK(bf.type == dtype::bf16);
        for (std::size_t i = 0; i < 5; ++i) REQUIRE(to_float(static_cast<const bf16*>(bf.data)[i]) == expect(i));
        CHECK_THROWS_WITH(src.get("ids", {4}), Contains("cannot be loaded as a weight") && Contains("<i8"));
        CHECK(src.list().size() == 5);
    }
    // Our writer, read back (and the ZIP64 records a > 4 GiB archive would use).
    const memory_source m = sample_tensors();
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& n : m.names()) files.emplace_back(n + ".npy", npy_bytes(*m.find(n)));
    for (const bool z64 : {false, true}) {
        const auto src = npz_source::from_buffer(buf(zip_stored(files, z64), "ours.npz"));
        for (const auto& n : m.names()) require_same_bytes(src.get(n, m.find(n)->shape), *m.find(n));
    }
}

namespace {

// Pieces of a zip archive, to corrupt one field at a time.
std::string one_entry_zip(const std::string& name, const std::string& payload, std::uint16_t method, std::uint32_t crc,
                          std::uint64_t compressed, std::uint64_t uncompressed, std::uint16_t flags = 0,
                          std::uint64_t local_offset = 0) {
    std::string out;
    store_le(out, 0x04034b50, 4);
    store_le(out, 20, 2);
    store_le(out, flags, 2);
    store_le(out, method, 2);
    store_le(out, 0, 4);
    store_le(out, crc, 4);
    store_le(out, compressed, 4);
    store_le(out, uncompressed, 4);
    store_le(out, name.size(), 2);
    store_le(out, 0, 2);
    out += name + payload;
    const std::size_t cd = out.size();
    store_le(out, 0x02014b50, 4);
    store_le(out, 20, 2);
    store_le(out, 20, 2);
    store_le(out, flags, 2);
    store_le(out, method, 2);
    store_le(out, 0, 4);
    store_le(out, crc, 4);
    store_le(out, compressed, 4);
    store_le(out, uncompressed, 4);
    store_le(out, name.size(), 2);
    store_le(out, 0, 2);
    store_le(out, 0, 2);
    store_le(out, 0, 2);
    store_le(out, 0, 2);
    store_le(out, 0, 4);
    store_le(out, local_offset, 4);
    out += name;
    const std::size_t cd_size = out.size() - cd;
    store_le(out, 0x06054b50, 4);
    store_le(out, 0, 4);
    store_le(out, 1, 2);
    store_le(out, 1, 2);
    store_le(out, cd_size, 4);
    store_le(out, cd, 4);
    store_le(out, 0, 2);
    return out;
}

// A raw deflate stream of stored blocks of at most 65535 bytes (valid input for any inflater).
std::string deflate_stored(const std::string& data) {
    std::string out;
    std::size_t at = 0;
    do {
        const std::size_t n = std::min<std::size_t>(65535, data.size() - at);
        out.push_back(at + n == data.size() ? '\x01' : '\x00');  // BFINAL on the last block
        store_le(out, n, 2);
        store_le(out, static_cast<std::uint16_t>(~n), 2);
        out += data.substr(at, n);
        at += n;
    } while (at < data.size());
    return out;
}

std::uint32_t crc_of(const std::string& s) {
    return crc32(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

}  // namespace

TEST_CASE("npz: listing inflates headers only; an entry is inflated when a model asks for it", "[weights][npz]") {
    std::vector<float> big(300'001);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i % 97) - 48.f;
    const std::string npy = npy_bytes("<f4", {300'001}, big.data(), big.size() * 4);  // 1.2 MB: past the header prefix
    const std::string deflated = deflate_stored(npy);
    const auto open_with = [&](std::uint32_t crc) {
        return npz_source::from_buffer(buf(one_entry_zip("w.npy", deflated, 8, crc, deflated.size(), npy.size()), "lazy.npz"));
    };
    const auto good = open_with(crc_of(npy));
    CHECK(to_param<float>(good.get("w", {300'001})).data[300'000] == static_cast<float>(300'000 % 97) - 48.f);
    // With a wrong CRC-32 the entry cannot be inflated, yet it lists: listing never inflated it.
    const auto bad = open_with(crc_of(npy) ^ 1);
    const auto l = bad.list();
    REQUIRE(l.size() == 1u);
    CHECK(l[0].name == "w");
    CHECK(l[0].dtype == "<f4");
    CHECK(l[0].shape == shape_t{300'001});
    CHECK(l[0].bytes == 1'200'004u);
    CHECK_THROWS_WITH(bad.get("w", {300'001}), Contains("CRC-32 mismatch"));
    // A header that disagrees with the declared entry size is caught from the prefix alone.
    const auto lying = npz_source::from_buffer(buf(one_entry_zip("w.npy", deflated, 8, crc_of(npy), deflated.size(), npy.size() + 4), "lie.npz"));
    CHECK_THROWS_WITH(lying.list(), Contains("does not match its shape"));
}

TEST_CASE("npz: every hostile archive is a clear error", "[weights][npz][hostile]") {
    const auto open = [](const std::string& file) { return npz_source::from_buffer(buf(file, "h.npz")); };
    std::vector<float> v{1.f, 2.f, 3.f};
    const std::string npy = npy_bytes("<f4", {3}, v.data(), 12);
    const auto stored = [&](const std::string& payload) {
        return one_entry_zip("x.npy", payload, 0, crc_of(payload), payload.size(), payload.size());
    };
    CHECK(open(stored(npy)).get("x", {3}).size() == 3);  // the helper makes valid archives
    const std::string deflated = deflate_stored(npy);
    const auto d = open(one_entry_zip("x.npy", deflated, 8, crc_of(npy), deflated.size(), npy.size()));
    CHECK(to_param<float>(d.get("x", {3})).data[2] == 3.f);

    CHECK_THROWS_WITH(open("PK"), Contains("truncated zip"));
    CHECK_THROWS_WITH(open(std::string(100, 'z')), Contains("not a zip archive"));
    std::string z = stored(npy);
    CHECK_THROWS_WITH(open(z.substr(0, z.size() - 30)), Contains("zip"));  // EOCD cut
    std::string bad_cd = z;
    bad_cd[bad_cd.size() - 3] = '\x7f';  // central directory offset far away
    CHECK_THROWS_WITH(open(bad_cd), Contains("central directory outside the file"));
    CHECK_THROWS_WITH(open(one_entry_zip("x.npy", npy, 0, 0, npy.size(), npy.size(), 0, 5000)), Contains("bad local header"));
    CHECK_THROWS_WITH(open(one_entry_zip("x.npy", npy, 0, 0, 1u << 30, 1u << 30)), Contains("data outside the file"));
    CHECK_THROWS_WITH(open(one_entry_zip("x.npy", npy, 0, 0, npy.size(), npy.size() + 1)), Contains("different sizes"));
    CHECK_THROWS_WITH(open(one_entry_zip("x.npy", npy, 9, 0, npy.size(), npy.size())), Contains("unsupported zip compression"));
    CHECK_THROWS_WITH(open(one_entry_zip("x.npy", npy, 0, 0, npy.size(), npy.size(), 1)), Contains("encrypted"));
    // Zip bomb: 100 bytes claiming to inflate to 1 GB is refused before any allocation.
    CHECK_THROWS_WITH(open(one_entry_zip("x.npy", std::string(100, 'a'), 8, 0, 100, 1u << 30)), Contains("zip bomb"));
    // Corrupt deflate data, short output, CRC mismatch.
    const auto bad_inflate = open(one_entry_zip("x.npy", std::string(40, '\xff'), 8, 0, 40, npy.size()));
    CHECK_THROWS_WITH(bad_inflate.get("x", {3}), Contains("corrupt deflate data") && Contains("x"));
    const auto short_inflate = open(one_entry_zip("x.npy", deflated, 8, crc_of(npy), deflated.size(), npy.size() + 8));
    CHECK_THROWS_WITH(short_inflate.get("x", {3}), Contains("corrupt deflate data"));
    const auto bad_crc = open(one_entry_zip("x.npy", deflated, 8, crc_of(npy) ^ 1, deflated.size(), npy.size()));
    CHECK_THROWS_WITH(bad_crc.get("x", {3}), Contains("CRC-32 mismatch"));
    // npy headers: magic, version, size, dtype, order, shape vs bytes.
    CHECK_THROWS_WITH(open(stored("NOTNUMPY" + npy)), Contains("not an npy array"));
    std::string v9 = npy;
    v9[6] = 9;
    CHECK_THROWS_WITH(open(stored(v9)), Contains("unsupported npy version"));
    std::string huge = "\x93NUMPY\x02";
    huge.push_back('\0');
    store_le(huge, 50'000'000, 4);
    CHECK_THROWS_WITH(open(stored(huge + "{}")), Contains("npy header too large"));
    CHECK_THROWS_WITH(open(stored(npy_bytes("<c8", {3}, v.data(), 12))), Contains("unknown npy dtype") && Contains("<c8"));
    CHECK_THROWS_WITH(open(stored(npy_bytes("<f4", {4}, v.data(), 12))), Contains("does not match its shape") && Contains("(4)"));
    CHECK_THROWS_WITH(open(stored(npy_bytes("<f4", {4294967296, 4294967296}, v.data(), 12))), Contains("does not match its shape"));
    std::string fortran = npy;
    fortran.replace(fortran.find("False"), 5, "True ");
    CHECK_THROWS_WITH(open(stored(fortran)), Contains("Fortran"));
    std::string garbled = npy;
    garbled.replace(garbled.find("'shape'"), 7, "'shope'");
    CHECK_THROWS_WITH(open(stored(garbled)), Contains("malformed npy header"));
    // Duplicate names.
    CHECK_THROWS_WITH(npz_source::from_buffer(buf(zip_stored({{"x.npy", npy}, {"x.npy", npy}}), "dup.npz")),
                      Contains("duplicate array name"));
}

// ---- name maps: the same weights in HF and big_vision layouts load to the same model ----------

namespace {

using models::vision_tower;
using models::vit_config;

// Copies `ours` (tensor of our model) into `theirs` under `name` with an explicit layout change.
void put(memory_source& theirs, const std::string& name, const tensor_data& t, shape_t shape) {
    tensor_data c = t;
    c.shape = std::move(shape);
    theirs.add_data(name, c);
}

// (rows, cols) -> (cols, rows) as f32
std::vector<float> transposed(const tensor_data& t) {
    const std::size_t r = t.shape[0], c = t.shape[1];
    const float* p = static_cast<const float*>(t.data);
    std::vector<float> out(r * c);
    for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) out[j * r + i] = p[i * c + j];
    return out;
}

// One pre-norm block of ours (`o`: our prefix, read through g) written in big_vision's names and
// Flax layouts at `t` (Dense (in, out); q/k/v (D, H, hd); out (H, hd, D); biases (H, hd)). With
// `stacked`, the tensors are collected there to be stacked on a new axis 0 (the scan layout).
struct bv_sizes {
    std::size_t width, heads, mlp;
};
template <class G>
void big_vision_block(memory_source& bv, const G& g, const std::string& o, const std::string& t, bv_sizes z, bool norms,
                      std::map<std::string, std::pair<std::vector<float>, shape_t>>* stacked) {
    const std::size_t D = z.width, H = z.heads, hd = D / H;
    const auto add = [&](const std::string& name, std::vector<float> v, shape_t s) {
        if (!stacked) return bv.add<float>(name, std::move(v), s);
        auto& [all, shape] = (*stacked)[name];
        all.insert(all.end(), v.begin(), v.end());
        shape = s;
    };
    const auto vec = [&](const std::string& n) {
        const auto tt = g(n);
        return std::vector<float>(static_cast<const float*>(tt.data), static_cast<const float*>(tt.data) + tt.size());
    };
    if (norms) {
        add(t + "LayerNorm_0/scale", vec(o + "norm1.weight"), {D});
        add(t + "LayerNorm_0/bias", vec(o + "norm1.bias"), {D});
        add(t + "LayerNorm_1/scale", vec(o + "norm2.weight"), {D});
        add(t + "LayerNorm_1/bias", vec(o + "norm2.bias"), {D});
    }
    for (const auto& [a, b] : {std::pair{"q", "query"}, {"k", "key"}, {"v", "value"}}) {
        add(t + "MultiHeadDotProductAttention_0/" + b + "/kernel", transposed(g(o + "attn." + a + ".weight")), {D, H, hd});
        add(t + "MultiHeadDotProductAttention_0/" + b + "/bias", vec(o + "attn." + a + ".bias"), {H, hd});
    }
    add(t + "MultiHeadDotProductAttention_0/out/kernel", transposed(g(o + "attn.o.weight")), {H, hd, D});
    add(t + "MultiHeadDotProductAttention_0/out/bias", vec(o + "attn.o.bias"), {D});
    add(t + "MlpBlock_0/Dense_0/kernel", transposed(g(o + "mlp.fc1.weight")), {D, z.mlp});
    add(t + "MlpBlock_0/Dense_0/bias", vec(o + "mlp.fc1.bias"), {z.mlp});
    add(t + "MlpBlock_0/Dense_1/kernel", transposed(g(o + "mlp.fc2.weight")), {z.mlp, D});
    add(t + "MlpBlock_0/Dense_1/bias", vec(o + "mlp.fc2.bias"), {D});
}

// A vision tower of ours (names under `o`, read through g) in big_vision's names and layouts at
// `t` ("img/"): conv (kh, kw, in, out), posemb (1, N, D), encoder norm, MAP head, and the blocks
// once per block or stacked on axis 0 (scan).
template <class G>
void big_vision_vit_tensors(memory_source& bv, const G& g, const std::string& o, const std::string& t, const vit_config& c,
                            bool scan) {
    const std::size_t D = c.width, p = c.patch, N = c.tokens();
    const auto& ew = g(o + "embedding.weight");  // (D, C, p, p) -> (p, p, C, D)
    std::vector<float> hwio(ew.size());
    const float* e = static_cast<const float*>(ew.data);
    for (std::size_t d = 0; d < D; ++d)
        for (std::size_t ci = 0; ci < 3; ++ci)
            for (std::size_t y = 0; y < p; ++y)
                for (std::size_t x = 0; x < p; ++x) hwio[((y * p + x) * 3 + ci) * D + d] = e[((d * 3 + ci) * p + y) * p + x];
    bv.add<float>(t + "embedding/kernel", hwio, {p, p, 3, D});
    put(bv, t + "embedding/bias", g(o + "embedding.bias"), {D});
    put(bv, t + "pos_embedding", g(o + "pos_embedding.weight"), {1, N, D});
    put(bv, t + "Transformer/encoder_norm/scale", g(o + "encoder.norm.weight"), {D});
    put(bv, t + "Transformer/encoder_norm/bias", g(o + "encoder.norm.bias"), {D});
    put(bv, t + "MAPHead_0/probe", g(o + "head.probe"), {1, 1, D});
    put(bv, t + "MAPHead_0/LayerNorm_0/scale", g(o + "head.norm.weight"), {D});
    put(bv, t + "MAPHead_0/LayerNorm_0/bias", g(o + "head.norm.bias"), {D});
    std::map<std::string, std::pair<std::vector<float>, shape_t>> stacked;
    for (std::size_t i = 0; i < c.depth; ++i)
        big_vision_block(bv, g, o + "encoder.blocks." + std::to_string(i) + ".",
                         scan ? t + "Transformer/encoderblock/" : t + "Transformer/encoderblock_" + std::to_string(i) + "/",
                         {D, c.heads, c.mlp}, true, scan ? &stacked : nullptr);
    for (auto& [name, vs] : stacked) {
        shape_t s = vs.second;
        s.insert(s.begin(), c.depth);
        bv.add<float>(name, vs.first, s);
    }
    // the head's attention and MLP; its one norm is above
    big_vision_block(bv, g, o + "head.", t + "MAPHead_0/", {D, c.heads, c.mlp}, false, nullptr);
}

std::vector<float> forward(const vision_tower<>& tower, const std::vector<float>& image) {
    const auto& c = tower.config();
    std::vector<float> out(c.tokens() * c.width), pooled(c.width);
    core::workspace ws(tower.workspace_floats(1));
    tower.forward(image.data(), 1, layers::image_layout::nchw, out.data(), ws);
    tower.pool(out.data(), 1, pooled.data(), ws);
    out.insert(out.end(), pooled.begin(), pooled.end());
    return out;
}

}  // namespace

TEST_CASE("name maps: HF SigLIP and big_vision (per-block and scan) load the same vision tower", "[weights][maps]") {
    const vit_config c{24, 3, 40, 4, 4, 12, 0, true};  // 3x3 grid, MAP head
    const random_source rnd(11);
    vision_tower<> ref(c, cursor(rnd));
    memory_source ours;
    layers::save(ref, ours);
    const auto image = test::random_vector(3 * 12 * 12, 12, 0.5f);
    const auto expected = forward(ref, image);
    const auto g = [&](const std::string& n) { return *ours.find(n); };
    const std::size_t D = c.width;

    // HF SigLIP names, PyTorch layouts (Linear (out, in), conv (out, in, kh, kw)), fused head in_proj.
    memory_source hf;
    put(hf, "vision_model.embeddings.patch_embedding.weight", g("embedding.weight"), g("embedding.weight").shape);
    put(hf, "vision_model.embeddings.patch_embedding.bias", g("embedding.bias"), {D});
    put(hf, "vision_model.embeddings.position_embedding.weight", g("pos_embedding.weight"), {9, D});
    for (std::size_t i = 0; i < c.depth; ++i) {
        const std::string o = "encoder.blocks." + std::to_string(i) + ".", t = "vision_model.encoder.layers." + std::to_string(i) + ".";
        for (const char* p : {"weight", "bias"}) {
            put(hf, t + "layer_norm1." + p, g(o + "norm1." + p), g(o + "norm1." + p).shape);
            put(hf, t + "layer_norm2." + p, g(o + "norm2." + p), g(o + "norm2." + p).shape);
            for (const auto& [a, b] : {std::pair{"q", "q_proj"}, {"k", "k_proj"}, {"v", "v_proj"}, {"o", "out_proj"}})
                put(hf, t + "self_attn." + b + "." + p, g(o + "attn." + a + "." + p), g(o + "attn." + a + "." + p).shape);
            for (const char* fc : {"fc1", "fc2"})
                put(hf, t + "mlp." + fc + "." + p, g(o + "mlp." + fc + "." + p), g(o + "mlp." + fc + "." + p).shape);
        }
    }
    for (const char* p : {"weight", "bias"}) {
        put(hf, std::string("vision_model.post_layernorm.") + p, g(std::string("encoder.norm.") + p), {D});
        put(hf, std::string("vision_model.head.layernorm.") + p, g(std::string("head.norm.") + p), {D});
        put(hf, std::string("vision_model.head.attention.out_proj.") + p, g(std::string("head.attn.o.") + p),
            g(std::string("head.attn.o.") + p).shape);
        for (const char* fc : {"fc1", "fc2"})
            put(hf, std::string("vision_model.head.mlp.") + fc + "." + p, g(std::string("head.mlp.") + fc + "." + p),
                g(std::string("head.mlp.") + fc + "." + p).shape);
    }
    put(hf, "vision_model.head.probe", g("head.probe"), {1, 1, D});
    std::vector<float> in_w, in_b;
    for (const char* a : {"q", "k", "v"}) {
        const auto w = g(std::string("head.attn.") + a + ".weight"), b = g(std::string("head.attn.") + a + ".bias");
        in_w.insert(in_w.end(), static_cast<const float*>(w.data), static_cast<const float*>(w.data) + w.size());
        in_b.insert(in_b.end(), static_cast<const float*>(b.data), static_cast<const float*>(b.data) + b.size());
    }
    hf.add<float>("vision_model.head.attention.in_proj_weight", in_w, {3 * D, D});
    hf.add<float>("vision_model.head.attention.in_proj_bias", in_b, {3 * D});
    // Through a real safetensors file, as a user would load it.
    std::map<std::string, tensor_data> hf_all;
    for (const auto& n : hf.names()) hf_all.emplace(n, *hf.find(n));
    const auto hf_file = safetensors_source::from_buffer(buf(to_safetensors(hf_all), "siglip.safetensors"));
    CHECK(detect_naming(hf_file.names()) == naming::hf_siglip);
    const mapped_source hf_mapped(hf_file, name_maps::hf_siglip_vision());
    vision_tower<> from_hf(c, cursor(hf_mapped));
    CHECK(forward(from_hf, image) == expected);

    // big_vision names, Flax layouts: Dense (in, out); q/k/v (D, H, hd); out (H, hd, D); conv (kh, kw, in, out);
    // posemb (1, N, D); biases (H, hd). Once per block, once stacked ("scan").
    for (const bool scan : {false, true}) {
        INFO("scan " << scan);
        memory_source bv;
        big_vision_vit_tensors(bv, g, "", "img/", c, scan);
        const std::string path = (temp_dir("bv") / "bv.npz").string();
        write_npz(path, bv);
        const auto npz = npz_source::open(path);
        CHECK(detect_naming(npz.names()) == naming::big_vision);
        const mapped_source bv_mapped(npz, name_maps::big_vision_vit());
        vision_tower<> from_bv(c, cursor(bv_mapped));
        const auto got = forward(from_bv, image);
        REQUIRE(got.size() == expected.size());
        for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == expected[i]);
    }

    // A wrong layout in the file is named with both names and both shapes.
    memory_source wrong;
    wrong.add<float>("img/embedding/kernel", test::random_vector(D * 48, 1), {D, 3, 4, 4});
    const mapped_source wrong_mapped(wrong, name_maps::big_vision_vit());
    CHECK_THROWS_WITH(vision_tower<>(c, cursor(wrong_mapped)),
                      Contains("embedding.weight <- img/embedding/kernel") && Contains("(24, 3, 4, 4)"));
}

TEST_CASE("name maps: a big_vision two-tower SigLIP (img/, txt/, t, b) loads as the same pair", "[weights][maps]") {
    const models::siglip_config sc{{24, 2, 40, 4, 4, 12, 0, true}, {50, 24, 2, 40, 4, 7, 0}};
    const random_source rnd(31);
    models::siglip_model<float> ref(sc, cursor(rnd));
    memory_source ours;
    layers::save(ref, ours);
    const auto g = [&](const std::string& n) { return *ours.find(n); };
    const std::size_t D = 24;
    memory_source bv;
    big_vision_vit_tensors(bv, g, "vision.", "img/", sc.vision, false);  // per-block names here
    // The text tower (text_transformer.py): Embed_0, pos_embedding (1, L, D), Encoder_0 (scanned
    // here), encoder_norm, head Dense (in, out); and the log temperature t, the bias b.
    put(bv, "txt/Embed_0/embedding", g("text.embedding.weight"), {50, D});
    put(bv, "txt/pos_embedding", g("text.pos_embedding.weight"), {1, 7, D});
    put(bv, "txt/Encoder_0/encoder_norm/scale", g("text.encoder.norm.weight"), {D});
    put(bv, "txt/Encoder_0/encoder_norm/bias", g("text.encoder.norm.bias"), {D});
    std::map<std::string, std::pair<std::vector<float>, shape_t>> stacked;
    for (std::size_t i = 0; i < 2; ++i)
        big_vision_block(bv, g, "text.encoder.blocks." + std::to_string(i) + ".", "txt/Encoder_0/encoderblock/", {D, 4, 40}, true,
                         &stacked);
    for (auto& [name, vs] : stacked) {
        shape_t s = vs.second;
        s.insert(s.begin(), 2);
        bv.add<float>(name, vs.first, s);
    }
    bv.add<float>("txt/head/kernel", transposed(g("text.head.weight")), {D, D});
    put(bv, "txt/head/bias", g("text.head.bias"), {D});
    put(bv, "t", g("logit_scale"), {1});
    put(bv, "b", g("logit_bias"), {1});
    const std::string path = (temp_dir("bv2") / "siglip.npz").string();
    write_npz(path, bv);
    const auto npz = npz_source::open(path);
    CHECK(detect_naming(npz.names()) == naming::big_vision);
    const mapped_source mapped(npz, rules_for(naming::big_vision, "siglip"));
    models::siglip_model<float> loaded(sc, cursor(mapped));
    memory_source again;
    layers::save(loaded, again);
    REQUIRE(again.names() == ours.names());
    for (const auto& n : ours.names()) {
        INFO(n);
        require_same_bytes(*again.find(n), *ours.find(n));
    }
    // The text tower alone from the same file.
    const mapped_source text_only(npz, rules_for(naming::big_vision, "siglip_text"));
    CHECK_NOTHROW(models::text_tower<float>(sc.text, cursor(text_only)));
}

TEST_CASE("name maps: HF T5 v1.1 and v1.0 checkpoints load the same model", "[weights][maps]") {
    for (const bool v10 : {false, true}) {
        INFO("v1.0 " << v10);
        models::t5_config c{61, 16, 24, 2, 8, 2, 2};
        c.tied_embeddings = v10;
        const random_source rnd(21);
        memory_source ours;
        std::vector<float> expect_logits, got_logits;
        const auto run = [&](auto& model, std::vector<float>& logits) {
            const std::vector<std::int32_t> ids{3, 14, 15, 9, 2};
            const std::vector<std::size_t> lens{5};
            std::vector<float> memory(5 * c.d_model);
            model.embed(ids.data(), 5, memory.data());
            core::workspace ws(model.workspace_floats(1, 5, 3));
            model.encode(memory.data(), 1, 5, lens, ws);
            auto state = model.start(memory.data(), 1, 5, lens, 3);
            const std::vector<std::int32_t> dec{0, 7, 8};
            logits.resize(3 * c.vocab);
            model.step(dec.data(), 3, state, logits.data(), ws);
        };
        memory_source hf;
        const auto rename_all = [&] {
            for (const auto& n : ours.names()) {
                std::string t = n;
                const auto rep = [&](const std::string& a, const std::string& b) {
                    if (const auto p = t.find(a); p != std::string::npos) t.replace(p, a.size(), b);
                };
                rep("encoder.rel_bias.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
                rep("decoder.rel_bias.weight", "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
                rep("encoder.norm.", "encoder.final_layer_norm.");
                rep("decoder.norm.", "decoder.final_layer_norm.");
                rep("blocks.", "block.");
                const bool dec = t.rfind("decoder.", 0) == 0;
                rep(".norm1.", ".layer.0.layer_norm.");
                rep(".attn.", ".layer.0.SelfAttention.");
                rep(".self_attn.", ".layer.0.SelfAttention.");
                rep(".cross_attn.", ".layer.1.EncDecAttention.");
                rep(".norm2.", ".layer.1.layer_norm.");
                rep(".norm3.", ".layer.2.layer_norm.");
                rep(".mlp.fc1.", dec ? ".layer.2.DenseReluDense.wi." : ".layer.1.DenseReluDense.wi.");
                rep(".mlp.fc2.", dec ? ".layer.2.DenseReluDense.wo." : ".layer.1.DenseReluDense.wo.");
                rep(".mlp.", dec ? ".layer.2.DenseReluDense." : ".layer.1.DenseReluDense.");
                hf.add_data(t, *ours.find(n));
            }
        };
        if (v10) {
            models::t5_v10<float> ref(c, cursor(rnd));
            layers::save(ref, ours);
            run(ref, expect_logits);
            rename_all();
            CHECK(hf.contains("decoder.block.1.layer.2.DenseReluDense.wi.weight"));
            const mapped_source m(hf, name_maps::hf_t5());
            models::t5_v10<float> loaded(c, cursor(m));
            run(loaded, got_logits);
        } else {
            models::t5_v11<float> ref(c, cursor(rnd));
            layers::save(ref, ours);
            run(ref, expect_logits);
            rename_all();
            CHECK(hf.contains("encoder.block.1.layer.1.DenseReluDense.wi_1.weight"));
            CHECK(hf.contains("decoder.block.0.layer.1.EncDecAttention.o.weight"));
            CHECK(detect_naming(hf.names()) == naming::hf_t5);
            const mapped_source m(hf, name_maps::hf_t5());
            models::t5_v11<float> loaded(c, cursor(m));
            run(loaded, got_logits);
            // A checkpoint missing a tensor names ours and every name tried.
            memory_source partial;
            for (const auto& n : hf.names())
                if (n != "lm_head.weight") partial.add_data(n, *hf.find(n));
            const mapped_source pm(partial, name_maps::hf_t5());
            CHECK_THROWS_WITH(models::t5_v11<float>(c, cursor(pm)), Contains("missing tensor (at lm_head.weight)") && Contains("none of: lm_head.weight"));
        }
        CHECK(got_logits == expect_logits);
    }
}
