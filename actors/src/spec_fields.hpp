#pragma once
/// Options structs carried in role specs, declared once: a struct's table
/// `spec_fields(visit, options)` (step3_spec_tables.hpp) calls `visit(key, field)` for each
/// field, and the same table writes the struct into a RoleSpec's string options
/// (write_spec_fields) and reads it back (read_spec_fields). Numbers are written so that
/// they read back exactly; a key that is absent leaves its field at the struct's default;
/// a malformed value is an error naming the role, the factory and the option.
///
/// Field kinds: double, int64_t, uint64_t, int, bool ("1"/"0"), std::string, a
/// std::vector<int64_t> ("1,2,3"), std::optional of those (absent = unset), a NamedField
/// (an enum or dtype with its name and parse functions), and rl::AlgorithmOptions (one
/// option per algorithm setting, the key a prefix).
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <troupe/actors/messages.hpp>
#include <troupe/rl/algorithm.hpp>

namespace troupe::actors {

/// Reads a spec's options, naming the role and the option in every error.
class SpecReader {
 public:
  explicit SpecReader(const RoleSpec& spec) : spec_(spec) {}

  /// The option's text; null when the spec lacks it.
  const std::string* find(const std::string& key) const;
  /// `value`, the option `key` as read; fails saying the option is missing when it is empty.
  std::string nonempty(const std::string& key, const std::string& value) const;
  /// "role actor rank 0 (factory step3_actor): option \"lr\"", what errors start with.
  std::string where(const std::string& key) const;
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  const RoleSpec& spec() const { return spec_; }

 private:
  const RoleSpec& spec_;
};

/// A field written as a name: an enum or a dtype, with the function that names it and the
/// one that parses a name (throwing troupe::Error that starts with `where`).
template <class T>
struct NamedField {
  T& value;
  std::string (*name)(T);
  T (*parse)(const std::string& name, const std::string& where);
};

namespace spec_text {

/// Shortest text that reads back as the same double.
std::string write(double value);
std::string write(int64_t value);
std::string write(uint64_t value);
std::string write(int value);
std::string write(bool value);
std::string write(const std::string& value);
std::string write(const std::vector<int64_t>& values);  ///< "1,2,3"

void read(const std::string& text, double& into, const SpecReader& reader, const std::string& key);
void read(const std::string& text, int64_t& into, const SpecReader& reader, const std::string& key);
void read(const std::string& text, uint64_t& into, const SpecReader& reader, const std::string& key);
void read(const std::string& text, int& into, const SpecReader& reader, const std::string& key);
void read(const std::string& text, bool& into, const SpecReader& reader, const std::string& key);
void read(const std::string& text, std::string& into, const SpecReader& reader, const std::string& key);
void read(const std::string& text, std::vector<int64_t>& into, const SpecReader& reader, const std::string& key);

/// Whether an empty value means "absent" for a field of type T (it does for numbers and
/// flags; an empty string or list is a value).
template <class T>
constexpr bool empty_is_absent = !std::is_same_v<T, std::string> && !std::is_same_v<T, std::vector<int64_t>>;

}  // namespace spec_text

/// The writing visitor: each field into the spec's options. A key written twice (two
/// structs that share it, such as "dtype") must get the same text both times.
class SpecWriter {
 public:
  explicit SpecWriter(RoleSpec& spec) : spec_(spec) {}

  template <class T>
  void operator()(const std::string& key, const T& value) {
    put(key, spec_text::write(value));
  }
  template <class T>
  void operator()(const std::string& key, const std::optional<T>& value) {
    if (value) (*this)(key, *value);
  }
  template <class T>
  void operator()(const std::string& key, const NamedField<T>& field) {
    put(key, field.name(field.value));
  }
  /// One option `prefix` + setting per algorithm setting ("algo.kl_ctl").
  void operator()(const std::string& prefix, const rl::AlgorithmOptions& options);

 private:
  void put(const std::string& key, const std::string& text);
  RoleSpec& spec_;
};

/// The reading visitor: each field from the spec's options; absent keys leave the fields.
class SpecFieldReader {
 public:
  explicit SpecFieldReader(const SpecReader& reader) : reader_(reader) {}

  template <class T>
  void operator()(const std::string& key, T& value) {
    if (const auto* text = present<T>(key)) spec_text::read(*text, value, reader_, key);
  }
  template <class T>
  void operator()(const std::string& key, std::optional<T>& value) {
    if (const auto* text = present<T>(key)) {
      T read{};
      spec_text::read(*text, read, reader_, key);
      value = read;
    }
  }
  template <class T>
  void operator()(const std::string& key, NamedField<T> field) {
    if (const auto* text = present<T>(key)) field.value = field.parse(*text, reader_.where(key));
  }
  /// Every option that starts with `prefix`, as an algorithm setting.
  void operator()(const std::string& prefix, rl::AlgorithmOptions& options);

 private:
  template <class T>
  const std::string* present(const std::string& key) const {
    const auto* text = reader_.find(key);
    if (text && text->empty() && spec_text::empty_is_absent<T>) return nullptr;
    return text;
  }
  const SpecReader& reader_;
};

/// Writes `options` into `spec` through its table.
template <class Options>
void write_spec_fields(RoleSpec& spec, Options options) {
  SpecWriter writer(spec);
  spec_fields(writer, options);
}

/// `options` (by default the struct's defaults) with the fields `reader`'s spec carries.
template <class Options>
Options read_spec_fields(const SpecReader& reader, Options options = {}) {
  SpecFieldReader visit(reader);
  spec_fields(visit, options);
  return options;
}

}  // namespace troupe::actors
