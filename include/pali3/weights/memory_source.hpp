// In-memory weight source: a map from full names to owned tensors. Used by tests, by code
// that builds weights programmatically, and as the target of converters.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pali3/weights/source.hpp"

namespace pali3::weights {

class memory_source {
public:
    // Adds a tensor (copied). Throws on a duplicate name or a size that does not match the shape.
    template <weight_storage T>
    void add(const std::string& name, std::vector<T> values, const shape_t& shape) {
        if (values.size() != shape_size(shape))
            throw shape_error(core::describe("tensor size does not match its shape", name,
                                             std::to_string(shape_size(shape)) + " values for " + shape_string(shape),
                                             values.size()));
        if (tensors_.count(name))
            throw value_error(core::describe("duplicate tensor name", name, "a new name", "already present"));
        auto owned = std::make_shared<std::vector<T>>(std::move(values));
        tensor_data t;
        t.type = dtype_of<T>();
        t.shape = shape;
        t.data = owned->data();
        t.owner = std::move(owned);
        tensors_.emplace(name, std::move(t));
    }

    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

    tensor_data get(const std::string& name, const shape_t& expected) const {
        const auto it = tensors_.find(name);
        if (it == tensors_.end())
            throw format_error(core::describe("missing tensor", name, "a tensor of shape " + shape_string(expected),
                                              "no such name"));
        check_shape(it->second, name, expected);
        return it->second;
    }

    // The tensor as stored, whatever its shape (for layout-changing name maps).
    tensor_data get_raw(const std::string& name) const {
        const auto it = tensors_.find(name);
        if (it == tensors_.end())
            throw format_error(core::describe("missing tensor", name, "a tensor", "no such name"));
        return it->second;
    }

    // The stored tensor, or null when absent (no shape check).
    const tensor_data* find(const std::string& name) const {
        const auto it = tensors_.find(name);
        return it == tensors_.end() ? nullptr : &it->second;
    }

    // Adds an already-built tensor (shared, not copied).
    void add_data(const std::string& name, tensor_data t) {
        if (tensors_.count(name))
            throw value_error(core::describe("duplicate tensor name", name, "a new name", "already present"));
        tensors_.emplace(name, std::move(t));
    }

    // Names in sorted order (for inspection and "unexpected tensor" reports).
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& [name, t] : tensors_) out.push_back(name);
        return out;
    }

    std::size_t size() const { return tensors_.size(); }

private:
    std::map<std::string, tensor_data> tensors_;
};

static_assert(weight_source<memory_source>);

}  // namespace pali3::weights
