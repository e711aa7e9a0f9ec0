// JSON writer and recursive-descent parser.
#include "json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace wfgta {

std::string json_escape(const std::string& s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            case '\b': o += "\\b"; break;
            case '\f': o += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    o += buf;
                } else {
                    o += static_cast<char>(c);
                }
        }
    }
    return o + "\"";
}

void JsonWriter::comma() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    if (!first_.empty()) {
        if (!first_.back()) out_ += ',';
        first_.back() = false;
    }
}
JsonWriter& JsonWriter::begin_object() {
    comma();
    out_ += '{';
    first_.push_back(true);
    return *this;
}
JsonWriter& JsonWriter::end_object() {
    out_ += '}';
    first_.pop_back();
    return *this;
}
JsonWriter& JsonWriter::begin_array() {
    comma();
    out_ += '[';
    first_.push_back(true);
    return *this;
}
JsonWriter& JsonWriter::end_array() {
    out_ += ']';
    first_.pop_back();
    return *this;
}
JsonWriter& JsonWriter::key(const std::string& k) {
    comma();
    out_ += json_escape(k);
    out_ += ':';
    after_key_ = true;
    last_key_ = k;
    return *this;
}
JsonWriter& JsonWriter::number(double v) {
    if (!std::isfinite(v)) {
        throw std::domain_error("JSON cannot hold a non-finite number" +
                                (last_key_.empty() ? std::string() : " (key \"" + last_key_ + "\")"));
    }
    comma();
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out_ += buf;
    return *this;
}
JsonWriter& JsonWriter::integer(int64_t v) {
    comma();
    out_ += std::to_string(v);
    return *this;
}
JsonWriter& JsonWriter::boolean(bool v) {
    comma();
    out_ += v ? "true" : "false";
    return *this;
}
JsonWriter& JsonWriter::string(const std::string& s) {
    comma();
    out_ += json_escape(s);
    return *this;
}
JsonWriter& JsonWriter::null() {
    comma();
    out_ += "null";
    return *this;
}

const JsonValue* JsonValue::get(const std::string& k) const {
    if (type != Type::Object) return nullptr;
    auto it = obj.find(k);
    return it == obj.end() ? nullptr : &it->second;
}
std::string JsonValue::get_string(const std::string& k, const std::string& dflt) const {
    const JsonValue* v = get(k);
    return v && v->type == Type::String ? v->s : dflt;
}
double JsonValue::get_number(const std::string& k, double dflt) const {
    const JsonValue* v = get(k);
    return v && v->type == Type::Number ? v->num : dflt;
}

namespace {

class Parser {
public:
    explicit Parser(const std::string& t) : t_(t) {}
    JsonValue document() {
        JsonValue v = value(0);
        ws();
        if (i_ != t_.size()) fail("trailing characters");
        return v;
    }

private:
    [[noreturn]] void fail(const char* what) {
        throw std::invalid_argument(std::string("JSON: ") + what + " at offset " + std::to_string(i_));
    }
    void ws() {
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
    }
    bool lit(const char* w) {
        size_t n = std::char_traits<char>::length(w);
        if (t_.compare(i_, n, w) == 0) {
            i_ += n;
            return true;
        }
        return false;
    }
    JsonValue value(int depth) {
        if (depth > 64) fail("nesting too deep");
        ws();
        if (i_ >= t_.size()) fail("unexpected end");
        JsonValue v;
        char c = t_[i_];
        if (c == '{') {
            v.type = JsonValue::Type::Object;
            ++i_;
            ws();
            if (i_ < t_.size() && t_[i_] == '}') {
                ++i_;
                return v;
            }
            for (;;) {
                ws();
                if (i_ >= t_.size() || t_[i_] != '"') fail("expected a key");
                std::string k = str();
                ws();
                if (i_ >= t_.size() || t_[i_] != ':') fail("expected ':'");
                ++i_;
                v.obj[k] = value(depth + 1);
                ws();
                if (i_ < t_.size() && t_[i_] == ',') { ++i_; continue; }
                if (i_ < t_.size() && t_[i_] == '}') { ++i_; return v; }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            v.type = JsonValue::Type::Array;
            ++i_;
            ws();
            if (i_ < t_.size() && t_[i_] == ']') {
                ++i_;
                return v;
            }
            for (;;) {
                v.arr.push_back(value(depth + 1));
                ws();
                if (i_ < t_.size() && t_[i_] == ',') { ++i_; continue; }
                if (i_ < t_.size() && t_[i_] == ']') { ++i_; return v; }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') {
            v.type = JsonValue::Type::String;
            v.s = str();
            return v;
        }
        if (lit("true")) { v.type = JsonValue::Type::Bool; v.b = true; return v; }
        if (lit("false")) { v.type = JsonValue::Type::Bool; return v; }
        if (lit("null")) return v;
        return number();
    }
    JsonValue number() {
        size_t start = i_;
        if (i_ < t_.size() && t_[i_] == '-') ++i_;
        auto digits = [&] {
            size_t s = i_;
            while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
            return i_ > s;
        };
        if (!digits()) fail("bad value");
        if (i_ < t_.size() && t_[i_] == '.') { ++i_; if (!digits()) fail("bad number"); }
        if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
            ++i_;
            if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
            if (!digits()) fail("bad exponent");
        }
        JsonValue v;
        v.type = JsonValue::Type::Number;
        v.num = std::strtod(t_.substr(start, i_ - start).c_str(), nullptr);
        return v;
    }
    unsigned hex4() {
        if (i_ + 4 > t_.size()) fail("short \\u escape");
        unsigned u = 0;
        for (int k = 0; k < 4; ++k) {
            char h = t_[i_++];
            u <<= 4;
            if (h >= '0' && h <= '9') u |= h - '0';
            else if (h >= 'a' && h <= 'f') u |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F') u |= h - 'A' + 10;
            else fail("bad \\u escape");
        }
        return u;
    }
    static void utf8(std::string& o, unsigned cp) {
        if (cp < 0x80) o += static_cast<char>(cp);
        else if (cp < 0x800) { o += static_cast<char>(0xC0 | (cp >> 6)); o += static_cast<char>(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
            o += static_cast<char>(0xE0 | (cp >> 12));
            o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            o += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            o += static_cast<char>(0xF0 | (cp >> 18));
            o += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            o += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    std::string str() {
        ++i_;  // opening quote
        std::string o;
        while (i_ < t_.size()) {
            char c = t_[i_++];
            if (c == '"') return o;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') { o += c; continue; }
            if (i_ >= t_.size()) break;
            char e = t_[i_++];
            switch (e) {
                case '"': o += '"'; break;
                case '\\': o += '\\'; break;
                case '/': o += '/'; break;
                case 'b': o += '\b'; break;
                case 'f': o += '\f'; break;
                case 'n': o += '\n'; break;
                case 'r': o += '\r'; break;
                case 't': o += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && t_.compare(i_, 2, "\\u") == 0) {
                        i_ += 2;
                        unsigned lo = hex4();
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    utf8(o, cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
        fail("unterminated string");
    }

    const std::string& t_;
    size_t i_ = 0;
};

}  // namespace

JsonValue json_parse(const std::string& text) { return Parser(text).document(); }

}  // namespace wfgta
