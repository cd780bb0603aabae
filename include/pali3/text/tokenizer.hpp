// SentencePiece tokenizer with PaLI's location and segmentation tokens.
//
// PaLI adds 1024 `<loc0000>`..`<loc1023>` (box coordinates) and 128 `<seg000>`..`<seg127>` (VQ-VAE
// mask codes) to the vocabulary. When the sentencepiece model already holds them (as user-defined
// symbols, like PaliGemma's tokenizer) their ids come from the model; otherwise they are appended
// after the model's last id (loc i -> size + i, seg i -> size + 1024 + i) and the text model's
// vocabulary must include those rows. Either way each is one id, in both directions.
// Ids follow T5: pad 0 (also the decoder start), eos 1, unk 2 — whatever the model file says.
// Invalid UTF-8 input is an error (sentencepiece would silently replace it).
#pragma once

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/files.hpp"
#include "pali3/core/json.hpp"

namespace pali3::text {

inline constexpr int num_loc_tokens = 1024;
inline constexpr int num_seg_tokens = 128;

inline std::string loc_token(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "<loc%04d>", i);
    return buf;
}
inline std::string seg_token(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "<seg%03d>", i);
    return buf;
}

// The comma-separated list of the 1152 PaLI symbols, for `--user_defined_symbols` when training.
inline std::string pali_symbols() {
    std::string s;
    for (int i = 0; i < num_loc_tokens; ++i) s += (i ? "," : "") + loc_token(i);
    for (int i = 0; i < num_seg_tokens; ++i) s += "," + seg_token(i);
    return s;
}

namespace detail {
// sentencepiece 0.1.97 trusts the precompiled character map of a model's normalizer and
// denormalizer: a corrupt one (found by fuzz/fuzz_tokenizer: a map whose trie claims 1 byte) makes
// Encode / Decode read far outside it (SEGV). So before sentencepiece sees a model, each map is
// checked the way its lookup reads it: the trie is a darts-clone double array (32-bit units);
// from every node reachable from the root, a lookup may read the unit at (node base ^ c) for any
// byte c, and a leaf's value is an offset into the NUL-separated strings after the trie. Every such
// index must be inside the map. Returns what is wrong, or "" when the map is sound.
inline std::string charmap_problem(std::string_view blob) {
    if (blob.empty()) return "";
    if (blob.size() < 4) return "a character map of " + std::to_string(blob.size()) + " bytes (its trie size alone takes 4)";
    const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(blob[i])); };
    const std::size_t trie = byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24;
    if (trie == 0 || trie % 4 != 0 || trie >= blob.size() - 4)
        return "a character-map trie of " + std::to_string(trie) + " bytes in a map of " + std::to_string(blob.size());
    const std::size_t n = trie / 4, strings = blob.size() - 4 - trie;
    if (blob.back() != '\0') return "character-map strings not NUL-terminated";
    const auto unit = [&](std::size_t i) {
        const std::size_t at = 4 + 4 * i;
        return byte(at) | byte(at + 1) << 8 | byte(at + 2) << 16 | byte(at + 3) << 24;
    };
    const auto offset = [](std::uint32_t u) { return static_cast<std::size_t>((u >> 10) << ((u & (1u << 9)) >> 6)); };
    std::vector<std::uint8_t> seen(n, 0);
    std::vector<std::size_t> todo{0};
    seen[0] = 1;
    while (!todo.empty()) {
        const std::size_t pos = todo.back();
        todo.pop_back();
        const std::uint32_t u = unit(pos);
        const std::size_t base = pos ^ offset(u);
        if ((base | 0xFF) >= n)
            return "a character-map trie node whose children lie outside the trie (unit " + std::to_string(pos) + " of " + std::to_string(n) + ")";
        if (pos != 0 && ((u >> 8) & 1) && (unit(base) & 0x7fffffffu) >= strings)
            return "a character-map entry beyond the map's strings (unit " + std::to_string(pos) + ")";
        for (std::uint32_t c = 0; c < 256; ++c) {
            const std::size_t child = base ^ c;
            if ((unit(child) & (0x80000000u | 0xFFu)) == c && !seen[child]) {
                seen[child] = 1;
                todo.push_back(child);
            }
        }
    }
    return "";
}

// The (de)normalizer character maps of a serialized ModelProto (fields 3 and 5, each a
// NormalizerSpec whose field 2 is the map), checked with charmap_problem(). Protobuf wire format,
// read only as far as needed; bytes that are not a message are left to sentencepiece to refuse.
inline void check_model_charmaps(std::string_view bytes, std::string_view where) {
    struct field {
        std::uint64_t number = 0;
        std::string_view bytes;  // length-delimited fields only
    };
    const auto fields = [](std::string_view b, std::vector<field>& out) {
        std::size_t i = 0;
        const auto varint = [&](std::uint64_t& v) {
            v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (i >= b.size()) return false;
                const auto x = static_cast<unsigned char>(b[i++]);
                v |= static_cast<std::uint64_t>(x & 0x7f) << shift;
                if (x < 0x80) return true;
            }
            return false;
        };
        while (i < b.size()) {
            std::uint64_t key = 0, len = 0;
            if (!varint(key)) return false;
            switch (key & 7) {
                case 0: if (!varint(len)) return false; break;
                case 1: if (b.size() - i < 8) return false; i += 8; break;
                case 5: if (b.size() - i < 4) return false; i += 4; break;
                case 2:
                    if (!varint(len) || len > b.size() - i) return false;
                    out.push_back({key >> 3, b.substr(i, static_cast<std::size_t>(len))});
                    i += static_cast<std::size_t>(len);
                    break;
                default: return false;
            }
        }
        return true;
    };
    std::vector<field> top;
    if (!fields(bytes, top)) return;
    for (const auto& spec : top) {
        if (spec.number != 3 && spec.number != 5) continue;
        std::vector<field> inner;
        if (!fields(spec.bytes, inner)) continue;
        std::string_view map;
        for (const auto& f : inner)
            if (f.number == 2) map = f.bytes;  // the last occurrence wins, as protobuf merges
        if (const auto problem = charmap_problem(map); !problem.empty())
            throw format_error(core::describe("cannot load sentencepiece model", where,
                                              std::string("a sound ") + (spec.number == 3 ? "normalizer" : "denormalizer") + " character map",
                                              problem));
    }
}
}  // namespace detail

class tokenizer {
public:
    static tokenizer load(const std::string& path) {
        core::require_regular_file(path, "cannot load sentencepiece model");
        std::ifstream in(path, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in.good() && !in.eof())
            throw format_error(core::describe("cannot load sentencepiece model", path, "a readable file", "a read error"));
        return from_serialized(bytes, path);
    }
    static tokenizer from_serialized(std::string_view bytes, std::string_view where = "<memory>") {
        detail::check_model_charmaps(bytes, where);
        tokenizer t;
        const auto status = guarded(where, [&] { return t.sp_->LoadFromSerializedProto(bytes); });
        if (!status.ok())
            throw format_error(core::describe("cannot load sentencepiece model", where, "a sentencepiece model file", status.ToString()));
        t.init();
        return t;
    }

    // Ids of `text` (+ eos when asked). Special tokens anywhere in the text become single ids.
    std::vector<std::int32_t> encode(std::string_view text, bool add_eos = true) const {
        if (const auto bad = json::find_invalid_utf8(text); bad != std::string_view::npos)
            throw value_error(core::describe("text is not valid UTF-8", "tokenizer::encode", "UTF-8",
                                             "bad byte at offset " + std::to_string(bad)));
        std::vector<std::int32_t> out;
        const auto plain = [&](std::string_view piece) {
            if (piece.empty()) return;
            for (const int id : sp_->EncodeAsIds(piece)) out.push_back(id);
        };
        if (native_) {
            plain(text);
        } else {
            std::size_t start = 0, i = 0;
            while (i < text.size()) {
                int index = -1;
                bool loc = false;
                if (special_at(text, i, index, loc)) {
                    plain(text.substr(start, i - start));
                    out.push_back(loc ? loc_id(index) : seg_id(index));
                    i += loc ? 9 : 8;
                    start = i;
                } else {
                    ++i;
                }
            }
            plain(text.substr(start));
        }
        if (add_eos) out.push_back(eos_id());
        return out;
    }

    // Text of `ids`; pad and eos are dropped, special tokens are written out, unknown ids throw.
    std::string decode(std::span<const std::int32_t> ids) const {
        std::string out;
        std::vector<int> run;
        const auto flush = [&] {
            if (!run.empty()) out += sp_->DecodeIds(run);
            run.clear();
        };
        for (const auto id : ids) {
            if (id < 0 || static_cast<std::size_t>(id) >= vocab_size())
                throw value_error(core::describe("token id out of range", "tokenizer::decode", "0 <= id < " + std::to_string(vocab_size()), id));
            if (id == pad_id() || id == eos_id()) continue;
            if (const auto l = loc_index(id)) {
                flush();
                out += loc_token(*l);
            } else if (const auto s = seg_index(id)) {
                flush();
                out += seg_token(*s);
            } else {
                run.push_back(id);
            }
        }
        flush();
        return out;
    }

    std::string piece(std::int32_t id) const {
        if (const auto l = loc_index(id)) return loc_token(*l);
        if (const auto s = seg_index(id)) return seg_token(*s);
        if (id < 0 || id >= sp_->GetPieceSize())
            throw value_error(core::describe("token id out of range", "tokenizer::piece", "0 <= id < " + std::to_string(vocab_size()), id));
        return sp_->IdToPiece(id);
    }

    // Rows the text model's embedding needs (model pieces + appended PaLI tokens).
    std::size_t vocab_size() const { return static_cast<std::size_t>(sp_->GetPieceSize()) + (native_ ? 0 : num_loc_tokens + num_seg_tokens); }
    std::size_t model_pieces() const { return static_cast<std::size_t>(sp_->GetPieceSize()); }
    bool native_pali_tokens() const { return native_; }

    std::int32_t eos_id() const { return sp_->eos_id(); }
    std::int32_t pad_id() const { return sp_->pad_id() >= 0 ? sp_->pad_id() : 0; }
    std::int32_t unk_id() const { return sp_->unk_id(); }
    std::int32_t bos_id() const { return sp_->bos_id(); }
    std::int32_t decoder_start_id() const { return pad_id(); }

    std::int32_t loc_id(int i) const {
        check_index(i, num_loc_tokens, "loc");
        return loc_ids_[static_cast<std::size_t>(i)];
    }
    std::int32_t seg_id(int i) const {
        check_index(i, num_seg_tokens, "seg");
        return seg_ids_[static_cast<std::size_t>(i)];
    }
    std::optional<int> loc_index(std::int32_t id) const { return special_index(id, loc_first_, num_loc_tokens, loc_sorted_); }
    std::optional<int> seg_index(std::int32_t id) const { return special_index(id, seg_first_, num_seg_tokens, seg_sorted_); }

private:
    tokenizer() : sp_(std::make_shared<sentencepiece::SentencePieceProcessor>()) {}

    // sentencepiece reports most bad models by status, but some (a zero-length piece: its trie
    // builder throws Darts::Details::Exception, found by fuzz/fuzz_tokenizer) by a C++ exception.
    template <class Load>
    static sentencepiece::util::Status guarded(std::string_view where, Load&& load) {
        try {
            return load();
        } catch (const std::exception& e) {
            throw format_error(core::describe("cannot load sentencepiece model", where, "a sentencepiece model file", e.what()));
        }
    }

    // Index of `id` among the <loc> (or <seg>) ids: an offset from the first when the ids are
    // consecutive (appended after the model's pieces, or built in as one run, the usual case), a
    // binary search of the sorted (id, index) pairs otherwise; no scan per generated id.
    static std::optional<int> special_index(std::int32_t id, std::int32_t first, int n,
                                            const std::vector<std::pair<std::int32_t, int>>& sorted) {
        if (first >= 0) {
            const std::int64_t d = static_cast<std::int64_t>(id) - first;
            if (d >= 0 && d < n) return static_cast<int>(d);
            return std::nullopt;
        }
        const auto it = std::lower_bound(sorted.begin(), sorted.end(), std::pair<std::int32_t, int>{id, 0});
        if (it != sorted.end() && it->first == id) return it->second;
        return std::nullopt;
    }

    static void check_index(int i, int n, const char* what) {
        if (i < 0 || i >= n)
            throw value_error(core::describe(std::string(what) + " token index out of range", "tokenizer", "0 <= i < " + std::to_string(n), i));
    }

    // "<loc1234>" or "<seg123>" at text[i]?
    static bool special_at(std::string_view text, std::size_t i, int& index, bool& loc) {
        const auto digits = [&](std::size_t at, std::size_t n) {
            int v = 0;
            for (std::size_t k = 0; k < n; ++k) {
                const char c = text[at + k];
                if (c < '0' || c > '9') return -1;
                v = v * 10 + (c - '0');
            }
            return v;
        };
        if (text.compare(i, 4, "<loc") == 0 && i + 9 <= text.size() && text[i + 8] == '>') {
            index = digits(i + 4, 4);
            loc = true;
            return index >= 0 && index < num_loc_tokens;
        }
        if (text.compare(i, 4, "<seg") == 0 && i + 8 <= text.size() && text[i + 7] == '>') {
            index = digits(i + 4, 3);
            loc = false;
            return index >= 0 && index < num_seg_tokens;
        }
        return false;
    }

    void init() {
        loc_ids_.resize(num_loc_tokens);
        seg_ids_.resize(num_seg_tokens);
        int found = 0;
        for (int i = 0; i < num_loc_tokens; ++i) {
            loc_ids_[static_cast<std::size_t>(i)] = sp_->PieceToId(loc_token(i));
            found += !sp_->IsUnknown(loc_ids_[static_cast<std::size_t>(i)]);
        }
        for (int i = 0; i < num_seg_tokens; ++i) {
            seg_ids_[static_cast<std::size_t>(i)] = sp_->PieceToId(seg_token(i));
            found += !sp_->IsUnknown(seg_ids_[static_cast<std::size_t>(i)]);
        }
        if (found != 0 && found != num_loc_tokens + num_seg_tokens)
            throw format_error(core::describe("sentencepiece model has some PaLI tokens but not all", "tokenizer",
                                              "all 1152 <loc>/<seg> pieces or none", std::to_string(found) + " of them"));
        native_ = found != 0;
        const std::int32_t pieces = sp_->GetPieceSize();
        const auto index = [&](std::vector<std::int32_t>& ids, int n, std::int32_t appended_at, std::int32_t& first,
                               std::vector<std::pair<std::int32_t, int>>& sorted) {
            if (!native_) {
                for (int i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = appended_at + i;
            }
            bool run = true;
            for (int i = 0; i < n; ++i) run = run && ids[static_cast<std::size_t>(i)] == ids[0] + i;
            first = run ? ids[0] : -1;
            sorted.clear();
            if (!run) {
                for (int i = 0; i < n; ++i) sorted.emplace_back(ids[static_cast<std::size_t>(i)], i);
                std::sort(sorted.begin(), sorted.end());
            }
        };
        index(loc_ids_, num_loc_tokens, pieces, loc_first_, loc_sorted_);
        index(seg_ids_, num_seg_tokens, pieces + num_loc_tokens, seg_first_, seg_sorted_);
        if (sp_->eos_id() < 0)
            throw format_error(core::describe("sentencepiece model without an end-of-sequence id", "tokenizer", "eos_id >= 0", sp_->eos_id()));
    }

    std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::vector<std::int32_t> loc_ids_, seg_ids_;  // id of each <loc>/<seg> index
    std::int32_t loc_first_ = -1, seg_first_ = -1;   // the first id when consecutive, else -1
    std::vector<std::pair<std::int32_t, int>> loc_sorted_, seg_sorted_;  // (id, index) when not
    bool native_ = false;
};

}  // namespace pali3::text
