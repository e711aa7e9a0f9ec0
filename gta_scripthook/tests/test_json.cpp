// JSON: writer/parser round trips, escaping, %.17g numbers, non-finite refused, bad input named.
#include <cmath>
#include <limits>

#include "check.h"
#include "json.h"

using namespace wfgta;

TEST(json, round_trip) {
    JsonWriter w;
    w.begin_object();
    w.key("type").string("fra\"me\n\\ \x01 é");
    w.key("n").number(0.1 + 0.2);
    w.key("big").number(1765000000123.456);
    w.key("i").integer(-42);
    w.key("arr").begin_array().number(1.5).boolean(true).null().begin_object().end_object().end_array();
    w.key("nested").begin_object().key("x").number(-1e-300).end_object();
    w.end_object();
    JsonValue v = json_parse(w.str());
    CHECK(v.is_object());
    CHECK(v.get_string("type") == "fra\"me\n\\ \x01 é");
    CHECK(v.get_number("n") == 0.1 + 0.2);  // %.17g is exact for doubles
    CHECK(v.get_number("big") == 1765000000123.456);
    CHECK(v.get_number("i") == -42);
    const JsonValue* arr = v.get("arr");
    CHECK(arr && arr->arr.size() == 4 && arr->arr[0].num == 1.5 && arr->arr[1].b &&
          arr->arr[2].type == JsonValue::Type::Null && arr->arr[3].is_object());
    CHECK(v.get("nested")->get_number("x") == -1e-300);
}

TEST(json, refuses_non_finite) {
    for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                       -std::numeric_limits<double>::infinity()}) {
        JsonWriter w;
        w.begin_object().key("speed");
        bool threw = false;
        try {
            w.number(bad);
        } catch (const std::domain_error& e) {
            threw = std::string(e.what()).find("speed") != std::string::npos;
        }
        CHECK(threw);
    }
}

TEST(json, parses_control_messages) {
    JsonValue v = json_parse(" {\"type\": \"start\", \"session\": \"s-1\\u00e9\\ud83d\\ude00\"} ");
    CHECK(v.get_string("type") == "start");
    CHECK(v.get_string("session") == "s-1\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(json_parse("{\"type\":\"stop\"}").get_string("type") == "stop");
}

TEST(json, rejects_malformed) {
    for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "{\"a\":1} x", "\"abc", "{'a':1}", "01x", "nul"}) {
        bool threw = false;
        try {
            json_parse(bad);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        CHECK_MSG(threw, bad);
    }
}
