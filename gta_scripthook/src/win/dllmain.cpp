// Windows glue for worldforge_gta.asi: loads ScriptHookV.dll's exports at run time (nothing from
// the SDK is needed to build), implements the invoker over nativeInit/nativePush64/nativeCall,
// registers the script and the reload hotkey in DllMain, and reads worldforge_gta.ini from the
// folder of the .asi. The only file besides the socket shim that includes windows.h.
#include <windows.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "config.h"
#include "invoker.h"
#include "natives.h"
#include "script.h"
#include "sender.h"

namespace {

using ScriptMainFn = void (*)();
using KeyboardHandlerFn = void (*)(DWORD key, WORD repeats, BYTE scan_code, BOOL is_extended, BOOL is_with_alt,
                                   BOOL was_down_before, BOOL is_up_now);

// Script Hook V's exports are C++ functions: looked up by their MSVC-decorated names first,
// then by the plain names some builds and shims use.
struct ShvApi {
    void (*scriptRegister)(HMODULE, ScriptMainFn) = nullptr;
    void (*scriptUnregister)(HMODULE) = nullptr;
    void (*scriptWait)(DWORD) = nullptr;
    void (*nativeInit)(uint64_t) = nullptr;
    void (*nativePush64)(uint64_t) = nullptr;
    uint64_t* (*nativeCall)() = nullptr;
    void (*keyboardHandlerRegister)(KeyboardHandlerFn) = nullptr;
    void (*keyboardHandlerUnregister)(KeyboardHandlerFn) = nullptr;
    int (*getGameVersion)() = nullptr;

    template <typename F>
    static bool resolve(HMODULE m, F& fn, const char* decorated, const char* plain) {
        FARPROC p = GetProcAddress(m, decorated);
        if (!p) p = GetProcAddress(m, plain);
        fn = reinterpret_cast<F>(reinterpret_cast<void*>(p));
        return fn != nullptr;
    }

    bool load() {
        HMODULE m = GetModuleHandleA("ScriptHookV.dll");
        if (!m) m = LoadLibraryA("ScriptHookV.dll");
        if (!m) return false;
        bool ok = resolve(m, scriptRegister, "?scriptRegister@@YAXPEAUHINSTANCE__@@P6AXXZ@Z", "scriptRegister");
        ok &= resolve(m, scriptUnregister, "?scriptUnregister@@YAXPEAUHINSTANCE__@@@Z", "scriptUnregister");
        ok &= resolve(m, scriptWait, "?scriptWait@@YAXK@Z", "scriptWait");
        ok &= resolve(m, nativeInit, "?nativeInit@@YAX_K@Z", "nativeInit");
        ok &= resolve(m, nativePush64, "?nativePush64@@YAX_K@Z", "nativePush64");
        ok &= resolve(m, nativeCall, "?nativeCall@@YAPEA_KXZ", "nativeCall");
        ok &= resolve(m, keyboardHandlerRegister, "?keyboardHandlerRegister@@YAXP6AXKGEHHHH@Z@Z",
                      "keyboardHandlerRegister");
        ok &= resolve(m, keyboardHandlerUnregister, "?keyboardHandlerUnregister@@YAXP6AXKGEHHHH@Z@Z",
                      "keyboardHandlerUnregister");
        resolve(m, getGameVersion, "?getGameVersion@@YA?AW4eGameVersion@@XZ", "getGameVersion");  // optional
        return ok;
    }
};

class ShvInvoker : public wfgta::Invoker {
public:
    explicit ShvInvoker(const ShvApi& api) : api_(api) {}
    void begin(uint64_t hash) override { api_.nativeInit(hash); }
    void push(uint64_t value) override { api_.nativePush64(value); }
    const uint64_t* call() override { return api_.nativeCall(); }

private:
    const ShvApi& api_;
};

ShvApi g_api;
bool g_api_ok = false;
HMODULE g_module = nullptr;
std::atomic<wfgta::Script*> g_script{nullptr};
std::atomic<int> g_reload_key{0x79};
wfgta::Sender* g_sender = nullptr;  // deliberately never destroyed inside DllMain

std::string config_path() {
    char buf[MAX_PATH * 2] = {0};
    DWORD n = GetModuleFileNameA(g_module, buf, sizeof buf);
    std::string p(buf, n);
    size_t slash = p.find_last_of("\\/");
    return (slash == std::string::npos ? std::string() : p.substr(0, slash + 1)) + "worldforge_gta.ini";
}

void script_main() {
    std::string path = config_path();
    wfgta::ConfigResult cr = wfgta::load_config_file(path);
    wfgta::Config cfg = cr.ok ? cr.config : wfgta::Config{};  // defaults when missing or invalid
    g_reload_key = cfg.reload_key;

    static ShvInvoker invoker(g_api);
    static wfgta::Natives natives(invoker);
    if (!g_sender) {
        g_sender = new wfgta::Sender(cfg.host, cfg.port);
        g_sender->start();
    }
    int version = g_api.getGameVersion ? g_api.getGameVersion() : -1;
    static wfgta::Script script(natives, *g_sender, cfg, version, path);
    g_script = &script;
    if (!cr.ok) script.report_error("using default settings: " + cr.error_text());
    script.run_forever([](int ms) {
        if (wfgta::Script* s = g_script.load()) g_reload_key = s->config().reload_key;
        g_api.scriptWait(static_cast<DWORD>(ms));
    });
}

void on_keyboard(DWORD key, WORD, BYTE, BOOL, BOOL, BOOL was_down_before, BOOL is_up_now) {
    if (is_up_now || was_down_before) return;
    if (static_cast<int>(key) != g_reload_key.load()) return;
    if (wfgta::Script* s = g_script.load()) s->request_reload();
}

}  // namespace

BOOL APIENTRY DllMain(HMODULE module, DWORD reason, LPVOID) {
    switch (reason) {
        case DLL_PROCESS_ATTACH:
            g_module = module;
            DisableThreadLibraryCalls(module);
            g_api_ok = g_api.load();
            if (!g_api_ok) return TRUE;  // no Script Hook V: stay loaded and inert
            g_api.scriptRegister(module, script_main);
            g_api.keyboardHandlerRegister(on_keyboard);
            break;
        case DLL_PROCESS_DETACH:
            if (!g_api_ok) break;
            g_script = nullptr;
            g_api.scriptUnregister(module);
            g_api.keyboardHandlerUnregister(on_keyboard);
            if (g_sender) g_sender->request_stop();
            break;
        default:
            break;
    }
    return TRUE;
}
