// A small JSON writer (numbers as %.17g, finite only; strings escaped) and a small parser,
// enough for the messages of docs/gta.md.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace wfgta {

// Appends JSON text; commas are placed automatically. A non-finite number throws
// std::domain_error (the message names the key when there is one).
class JsonWriter {
public:
    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    JsonWriter& key(const std::string& k);
    JsonWriter& number(double v);
    JsonWriter& integer(int64_t v);
    JsonWriter& boolean(bool v);
    JsonWriter& string(const std::string& s);
    JsonWriter& null();
    const std::string& str() const { return out_; }

private:
    void comma();
    std::string out_;
    std::vector<bool> first_;  // per open container: nothing written yet
    bool after_key_ = false;
    std::string last_key_;
};

std::string json_escape(const std::string& s);

struct JsonValue {
    enum class Type { Null, Bool, Number, String, Array, Object };
    Type type = Type::Null;
    bool b = false;
    double num = 0;
    std::string s;
    std::vector<JsonValue> arr;
    std::map<std::string, JsonValue> obj;

    bool is_object() const { return type == Type::Object; }
    // Member lookup; nullptr when absent or not an object.
    const JsonValue* get(const std::string& k) const;
    std::string get_string(const std::string& k, const std::string& dflt = "") const;
    double get_number(const std::string& k, double dflt = 0) const;
};

// Parses one JSON document; throws std::invalid_argument with the offset on malformed input.
JsonValue json_parse(const std::string& text);

}  // namespace wfgta
