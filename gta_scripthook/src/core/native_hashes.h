// Every native the plugin calls, by namespace::name and 64-bit hash, in one table.
// Hashes are the current names in alloc8or's gta5-nativedb-data; the ones not listed in
// docs/reference.md (part E) were checked against public natives databases / natives.h copies.
#pragma once
#include <cstdint>

namespace wfgta::hash {

// PLAYER
constexpr uint64_t PLAYER_PED_ID = 0xD80958FC74E988A6ULL;                          // PLAYER::PLAYER_PED_ID()
// ENTITY
constexpr uint64_t DOES_ENTITY_EXIST = 0x7239B21A38F536BAULL;                      // ENTITY::DOES_ENTITY_EXIST(e)
constexpr uint64_t GET_ENTITY_COORDS = 0x3FEF770D40960D5AULL;                      // ENTITY::GET_ENTITY_COORDS(e, alive)
constexpr uint64_t GET_ENTITY_VELOCITY = 0x4805D2B1D8CF94A9ULL;                    // ENTITY::GET_ENTITY_VELOCITY(e)
constexpr uint64_t GET_ENTITY_SPEED = 0xD5037BA82E12416FULL;                       // ENTITY::GET_ENTITY_SPEED(e)
constexpr uint64_t GET_ENTITY_HEADING = 0xE83D4F9BA2A38914ULL;                     // ENTITY::GET_ENTITY_HEADING(e)
constexpr uint64_t GET_ENTITY_QUATERNION = 0x7B3703D2D32DFA18ULL;                  // ENTITY::GET_ENTITY_QUATERNION(e, *x, *y, *z, *w)
// PED
constexpr uint64_t IS_PED_IN_ANY_VEHICLE = 0x997ABD671D25CA0BULL;                  // PED::IS_PED_IN_ANY_VEHICLE(ped, atGetIn)
constexpr uint64_t GET_VEHICLE_PED_IS_IN = 0x9A9112A0FE9A4713ULL;                  // PED::GET_VEHICLE_PED_IS_IN(ped, last)
constexpr uint64_t GET_PED_NEARBY_PEDS = 0x23F8F5FC7E8C4A6BULL;                    // PED::GET_PED_NEARBY_PEDS(ped, *sizeAndPeds, ignore)
constexpr uint64_t GET_PED_NEARBY_VEHICLES = 0xCFF869CBFA210D82ULL;                // PED::GET_PED_NEARBY_VEHICLES(ped, *sizeAndVehs)
constexpr uint64_t SET_PED_DENSITY_MULTIPLIER_THIS_FRAME = 0x95E3D6257B166CF2ULL;  // PED::...(mult)
constexpr uint64_t SET_SCENARIO_PED_DENSITY_MULTIPLIER_THIS_FRAME = 0x7A556143A1C03898ULL;  // PED::...(interior, exterior)
// TASK
constexpr uint64_t CLEAR_PED_TASKS = 0xE1EF3C1216AFF2CDULL;                        // TASK::CLEAR_PED_TASKS(ped)
constexpr uint64_t TASK_VEHICLE_DRIVE_WANDER = 0x480142959D337D00ULL;              // TASK::...(ped, veh, speed, style)
constexpr uint64_t TASK_WANDER_STANDARD = 0xBB9CE077274F6A1BULL;                   // TASK::...(ped, p1=10.0, p2=10)
constexpr uint64_t TASK_FOLLOW_NAV_MESH_TO_COORD = 0x15D3A79D4E44B913ULL;          // TASK::...(ped, x, y, z, moveBlendRatio, time, radius, navFlags, finalHeading)
constexpr uint64_t TASK_ENTER_VEHICLE = 0xC20E50AA46D09CA8ULL;                     // TASK::...(ped, veh, timeout, seat, speed, flag, p6)
constexpr uint64_t TASK_LEAVE_VEHICLE = 0xD3DBCE61A490BE02ULL;                     // TASK::...(ped, veh, flags)
constexpr uint64_t TASK_TURN_PED_TO_FACE_ENTITY = 0x5AD23D40115353ACULL;           // TASK::...(ped, entity, duration)
constexpr uint64_t TASK_LOOK_AT_ENTITY = 0x69F4BE8C8CC4796CULL;                    // TASK::...(ped, lookAt, duration, flags, priority)
constexpr uint64_t TASK_CHAT_TO_PED = 0x8C338E0263E4FD19ULL;                       // TASK::...(ped, target, p2, p3..p7 floats)
// VEHICLE
constexpr uint64_t SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME = 0x245A6883D966D537ULL;         // VEHICLE::...(mult)
constexpr uint64_t SET_RANDOM_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME = 0xB3B3359379FE77D3ULL;  // VEHICLE::...(mult)
constexpr uint64_t SET_PARKED_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME = 0xEAE6DCC7EEE3DB1DULL;  // VEHICLE::...(mult)
// MISC / CLOCK
constexpr uint64_t SET_WEATHER_TYPE_NOW_PERSIST = 0xED712CA327900C8AULL;           // MISC::...(const char* name)
constexpr uint64_t GET_FRAME_COUNT = 0xFC8202EFC642E6F2ULL;                        // MISC::GET_FRAME_COUNT()
constexpr uint64_t GET_GAME_TIMER = 0x9CD27B0045628463ULL;                         // MISC::GET_GAME_TIMER()
constexpr uint64_t SET_CLOCK_TIME = 0x47C3B5848C3E45D8ULL;                         // CLOCK::SET_CLOCK_TIME(h, m, s)
constexpr uint64_t PAUSE_CLOCK = 0x4055E40BD2DBEC1DULL;                            // CLOCK::PAUSE_CLOCK(toggle)
// CAM
constexpr uint64_t CREATE_CAM = 0xC3981DCE61D9E13FULL;                             // CAM::CREATE_CAM(const char* name, p1)
constexpr uint64_t DESTROY_CAM = 0x865908C81A2C22E9ULL;                            // CAM::DESTROY_CAM(cam, bScriptHostCam)
constexpr uint64_t SET_CAM_ACTIVE = 0x026FB97D0A425F84ULL;                         // CAM::SET_CAM_ACTIVE(cam, active)
constexpr uint64_t RENDER_SCRIPT_CAMS = 0x07E5B515DB0636FCULL;                     // CAM::RENDER_SCRIPT_CAMS(render, ease, easeTime, p3, p4, p5)
constexpr uint64_t SET_CAM_COORD = 0x4D41783FB745E42EULL;                          // CAM::SET_CAM_COORD(cam, x, y, z)
constexpr uint64_t SET_CAM_ROT = 0x85973643155D0B07ULL;                            // CAM::SET_CAM_ROT(cam, x, y, z, order)
constexpr uint64_t SET_CAM_FOV = 0xB13C14F66A00D047ULL;                            // CAM::SET_CAM_FOV(cam, fov)
constexpr uint64_t GET_FINAL_RENDERED_CAM_COORD = 0xA200EB1EE790F448ULL;           // CAM::...() -> Vector3
constexpr uint64_t GET_FINAL_RENDERED_CAM_ROT = 0x5B4E4C817FCC2DFBULL;             // CAM::...(order) -> Vector3
constexpr uint64_t GET_FINAL_RENDERED_CAM_FOV = 0x80EC114669DAEFF4ULL;             // CAM::...() -> float
// GRAPHICS
constexpr uint64_t DRAW_RECT = 0x3A618A217E5154F0ULL;                              // GRAPHICS::DRAW_RECT(x, y, w, h, r, g, b, a, p8); this frame only

}  // namespace wfgta::hash
